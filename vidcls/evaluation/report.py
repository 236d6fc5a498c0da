"""`report.md`: one page that states the numbers and links every figure of an evaluation."""

from __future__ import annotations

from pathlib import Path

from vidcls.fileio import atomic_write_bytes

HEADLINE = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro F1"),
            ("weighted_f1", "weighted F1"), ("top5_accuracy", "top-5 accuracy"), ("ece", "expected calibration error"))


def write_report(path: Path, runs: list, metrics: dict, figures: list[tuple[str, str]], note: str = "") -> None:
    """Writes `path` from `metrics` (as in metrics.json) and `figures` ([(title, file)]);
    `note` says where the predictions came from when they are not one run's (or an
    ensemble's) own."""
    subject = "action (all targets right)" if "targets" in metrics else "classes"
    lines = [f"# Evaluation: {metrics['split']} split, {metrics['num_samples']} clips", ""]
    if note:
        lines += [note, ""]
    else:
        lines += [f"Run{'s (ensemble: mean of the members’ probabilities)' if len(runs) > 1 else ''}: "
                  + ", ".join(f"`{run.root}`" for run in runs), ""]
    if metrics.get("tta", 1) > 1:
        lines += [f"Test-time augmentation: {metrics['tta']} temporal crops per clip, probabilities averaged.", ""]
    lines += [f"| metric ({subject}) | value |", "|---|---|"]
    lines += [f"| {label} | {metrics[key]:.4f} |" for key, label in HEADLINE if key in metrics]
    binary = metrics.get("binary")
    if binary and binary["roc_auc"] is not None:
        lines += [f"| ROC AUC ({binary['positive_class']}) | {binary['roc_auc']:.4f} |",
                  f"| PR AUC ({binary['positive_class']}) | {binary['pr_auc']:.4f} |"]
        for key, target in (("at_recall", "target_recall"), ("at_fpr", "target_fpr")):
            point = binary[key]
            lines.append(f"| threshold for {target.split('_')[1]} {point[target]} | {point['threshold']:.4f} "
                         f"(recall {point['recall']:.3f}, false-positive rate {point['false_positive_rate']:.3f}) |")
    for target, values in metrics.get("targets", {}).items():
        lines.append(f"| {target}: accuracy / macro F1 | {values['accuracy']:.4f} / {values['macro_f1']:.4f} |")
    if "members" in metrics:
        lines += ["", "| member | " + " | ".join(label for key, label in HEADLINE[:3]) + " |", "|---|---|---|---|"]
        for member, values in metrics["members"].items():
            lines.append(f"| `{member}` | " + " | ".join(f"{values[key]:.4f}" for key, _ in HEADLINE[:3]) + " |")
    lines += ["", "Files: `metrics.json`, `per_class.csv`, `predictions.csv`, `confusion*.json`.", ""]
    for title, name in figures:
        lines += [f"## {title[0].upper()}{title[1:]}", "", f"![{title}]({name})", ""]
    atomic_write_bytes(path, "\n".join(lines).encode())


class Metrics(dict):
    """What `evaluate` returns: the contents of metrics.json (a dict: `result["accuracy"]`)
    and `out_dir`, where the files went."""

    def describe(self) -> str:
        """The lines `vidcls evaluate` prints."""
        lines = [f"  member {member}: accuracy {values['accuracy']:.4f}, macro F1 {values['macro_f1']:.4f}"
                 for member, values in self.get("members", {}).items()]
        subject = "action " if "targets" in self else ("ensemble " if "members" in self else "")
        lines.append(f"{self['split']}: {subject}accuracy {self['accuracy']:.4f}, balanced accuracy "
                     f"{self['balanced_accuracy']:.4f}, macro F1 {self['macro_f1']:.4f} on {self['num_samples']} clips")
        for target, values in self.get("targets", {}).items():
            lines.append(f"  {target}: accuracy {values['accuracy']:.4f}, balanced accuracy {values['balanced_accuracy']:.4f}, "
                         f"macro F1 {values['macro_f1']:.4f}")
        if self.get("binary", {}).get("roc_auc") is not None:
            binary = self["binary"]
            lines.append(f"  {binary['positive_class']}: ROC AUC {binary['roc_auc']:.4f}, PR AUC {binary['pr_auc']:.4f}")
        if self.get("out_dir"):
            lines.append(f"files and report.md in {self['out_dir']}")
        return "\n".join(lines)
