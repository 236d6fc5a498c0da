import pytest

from vidcls.errors import VidclsError
from vidcls.videos import read_annotations


def _csv(tmp_path, text):
    path = tmp_path / "clips.csv"
    path.write_text(text)
    return path


def test_whole_videos_relative_to_the_csv(tmp_path):
    items = read_annotations(_csv(tmp_path, "path,label\nfights/a.mp4,fight\ncalm/b.avi,calm\n"))
    assert [(i.clip_id, i.video, i.label) for i in items] == [
        ("fights__a", str(tmp_path / "fights/a.mp4"), "fight"), ("calm__b", str(tmp_path / "calm/b.avi"), "calm")]
    assert items[0].range.whole


def test_epic_style_segments_with_verb_and_noun(tmp_path):
    items = read_annotations(_csv(tmp_path, "narration_id,video,start_sec,end_sec,verb,noun,participant_id\n"
                                            "P01_01_0,P01_01.mp4,1.5,3.25,open,door,P01\n"
                                            "P01_01_1,P01_01.mp4,4,6,close,door,P01\n"), data_dir="/videos")
    assert items[0].clip_id == "P01_01_0" and items[0].label == "open/door"
    assert (items[0].verb, items[0].noun, items[0].range.start_sec, items[0].range.end_sec) == ("open", "door", 1.5, 3.25)
    assert items[1].video == "/videos/P01_01.mp4" and items[1].group == "P01"
    assert items[0].manifest_fields()["verb"] == "open" and "start_frame" not in items[0].manifest_fields()


def test_frame_index_segments_get_distinct_ids(tmp_path):
    items = read_annotations(_csv(tmp_path, "path,start_frame,end_frame,label\nlong.mp4,0,30,a\nlong.mp4,30,60,b\n"))
    assert [(i.range.start_frame, i.range.end_frame) for i in items] == [(0, 30), (30, 60)]
    assert len({i.clip_id for i in items}) == 2


@pytest.mark.parametrize("text, message", [
    ("file,label\na.mp4,x\n", r"Expected a 'path' \(or 'video'\) column in .*clips.csv; found columns \['file', 'label'\]"),
    ("path,verb\na.mp4,x\n", r"Expected a 'label' column, or 'verb' and 'noun' columns"),
    ("path,label,start_sec\na.mp4,x,1\n", r"Expected both start_sec and end_sec"),
    ("path,label,colour\na.mp4,x,red\n", r"Unknown column\(s\) \['colour'\]"),
    ("path,label,start_sec,end_sec\na.mp4,x,one,2\n", r"Row 2 of .*clips.csv: expected float in column 'start_sec'; received 'one'"),
    ("path,label,start_frame,end_frame\na.mp4,x,9,3\n", r"Row 2 of .*: expected 0 <= start_frame < end_frame; received 9 and 3"),
    ("path,label\na.mp4,x\na.mp4,y\n", r"Duplicate clip id 'a' in .*clips.csv \(rows 2 and 3\)"),
    ("path,label\n", r"has a header but no rows"),
    ("path,label\na.mp4,\n", r"Row 2 of .* has no label"),
])
def test_bad_annotations_name_the_row_and_column(tmp_path, text, message):
    with pytest.raises(VidclsError, match=message):
        read_annotations(_csv(tmp_path, text))


def test_missing_csv(tmp_path):
    with pytest.raises(VidclsError, match="Annotations file .*nope.csv does not exist"):
        read_annotations(tmp_path / "nope.csv")
