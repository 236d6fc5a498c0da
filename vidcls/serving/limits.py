"""What one request may cost the server: the limits `vidcls serve` enforces (its flags are
these fields, with these defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vidcls.errors import VidclsError


def _limit(default, help_text: str, metavar: str | None = None):
    return field(default=default, metadata={"help": help_text, "metavar": metavar})


@dataclass(frozen=True)
class Limits:
    """Each field is a flag of `vidcls serve` (`max_upload_mb` is `--max-upload-mb`)."""

    max_upload_mb: float = _limit(200.0, "larger uploads are answered with 413, as soon as they pass the limit", "MB")
    max_windows: int = _limit(200, "?window=&stride= making more windows than this per video get 422", "N")
    idle_timeout: float = _limit(15.0, "an upload that sends nothing for this long gets 408", "SECONDS")
    upload_timeout: float = _limit(300.0, "an upload that takes longer than this in all gets 408", "SECONDS")
    max_concurrent: int = _limit(8, "uploads received and processed at once; more get 503 with Retry-After", "N")
    max_upload_disk_mb: float = _limit(0.0, "temporary disk for all uploads at once; an upload that would pass it "
                                            "gets 503 (0: twice --max-upload-mb)", "MB")

    def __post_init__(self):
        for name in ("max_upload_mb", "max_windows", "idle_timeout", "upload_timeout", "max_concurrent"):
            if not getattr(self, name) > 0:
                raise VidclsError(f"Expected --{name.replace('_', '-')} > 0; received {getattr(self, name)}")
        if self.max_upload_disk_mb and self.max_upload_disk_mb < self.max_upload_mb:
            raise VidclsError(f"Expected --max-upload-disk-mb >= --max-upload-mb ({self.max_upload_mb}), or 0 for "
                              f"twice it; received {self.max_upload_disk_mb}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)

    @property
    def max_disk_bytes(self) -> int:
        return int((self.max_upload_disk_mb or 2 * self.max_upload_mb) * 1e6)
