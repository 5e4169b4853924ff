"""reference.data.seed_export: the seed's CSV/WAV/txt layout holds exactly the same utterances."""
import csv

import numpy as np
import soundfile as sf

from reference.data.manifest import load_manifest
from reference.data.seed_export import export_seed_layout


def test_export_is_lossless_and_reads_back(mini_corpus, tmp_path):
    src = load_manifest(mini_corpus / "dev.jsonl")
    csv_path = export_seed_layout(mini_corpus / "dev.jsonl", tmp_path, "dev")
    assert csv_path.name == "libri_dev_manifest.csv"
    rows = list(csv.reader(csv_path.open()))
    assert len(rows) == len(src) and all(len(r) == 2 for r in rows)
    assert all(r[0].startswith("/") and r[0].endswith(".wav") for r in rows)  # absolute paths
    back = load_manifest(csv_path)  # our own reader of the reference format
    assert sorted(u.id for u in back) == sorted(u.id for u in src)
    # In duration order, as the seed's data preparation writes its manifests.
    durations = [sf.info(str(u.audio)).duration for u in back]
    assert durations == sorted(durations)
    by_id = {u.id: u for u in src}
    for b in back:
        a = by_id[b.id]
        assert b.id == a.id
        assert b.read_text().strip() == a.read_text().strip().upper()
        x, ra = sf.read(str(a.audio), dtype="int16")
        y, rb = sf.read(str(b.audio), dtype="int16")
        assert ra == rb == 16000 and sf.info(str(b.audio)).subtype == "PCM_16"
        np.testing.assert_array_equal(x, y)
