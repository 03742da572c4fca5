import json

import pytest

from activeseg.data.classes import load_classes
from activeseg.errors import DatasetError


def write(tmp_path, obj):
    p = tmp_path / "classes.json"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_reads_names_colours_ignore(tmp_path):
    c = load_classes(write(tmp_path, {"classes": ["a", "b"], "colors": [[1, 2, 3], [4, 5, 6]], "ignore_index": 255}))
    assert c.names == ("a", "b") and c.num_classes == 2
    assert c.colors == ((1, 2, 3), (4, 5, 6))
    assert c.valid_values() == {0, 1, 255}


def test_no_ignore_index_and_no_colours(tmp_path):
    c = load_classes(write(tmp_path, {"classes": ["a", "b", "c"]}))
    assert c.ignore_index is None and c.valid_values() == {0, 1, 2, 255}  # 255 always means unlabelled
    assert len(c.colors) == 3


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    ({"names": ["a"]}, "'classes' must be"),
    ({"classes": ["a", "a"]}, "duplicate"),
    ({"classes": ["a", "b"], "colors": [[1, 2, 3]]}, "'colors'"),
    ({"classes": ["a", "b"], "ignore_index": 1}, "ignore_index"),
])
def test_malformed_classes_json_names_file_and_remedy(tmp_path, content, fragment):
    with pytest.raises(DatasetError) as info:
        load_classes(write(tmp_path, content))
    assert fragment in str(info.value)
    assert "classes.json" in str(info.value) and "Remedy:" in str(info.value)
