"""card.py's data table: a machine that has rendered only part of a split (a fresh clone's `make al-study`)
keeps the card's row for it instead of writing the part it has."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "training"))
import card  # noqa: E402

ROW = "| ho_light | 80 | negative 13, pipe 67 | coastal | 0.84–6.95 | 23.41–87.84 | 0.22–1.35 | 0.135 | `25a2cd8092c9…` |"
CARD = f"""# card

| split | frames | pooled IoU |
|---|---|---|
| ho_light | 80 | 0.516 |

## Data

| split | frames | kinds | water (Jerlov) | altitude m | pitch ° | pipe Ø m | mean pipe fraction | sha256 |
|---|---|---|---|---|---|---|---|---|
{ROW}

## Time of `make model` on this machine
"""


def write_split(d: Path, n: int):
    (d / "image").mkdir(parents=True)
    (d / "mask").mkdir()
    metas = []
    for i in range(n):
        cv2.imwrite(str(d / "image" / f"{i:05d}.jpg"), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(d / "mask" / f"{i:05d}.png"), np.zeros((8, 8), np.uint8))
        metas.append({"kind": "pipe", "water": "murky", "pipeline_fraction": 0.5})
    (d / "meta.jsonl").write_text("\n".join(json.dumps(m) for m in metas) + "\n")


def test_part_of_a_split_keeps_the_cards_data_row(tmp_path, monkeypatch):
    (tmp_path / "MODEL_CARD.md").write_text(CARD)
    monkeypatch.setattr(card, "CARD", tmp_path / "MODEL_CARD.md")
    monkeypatch.setattr(card, "DATA", tmp_path / "data")
    d = {"frames": 80, "sha256": "25a2cd8092c9" + "0" * 52}
    assert card.data_row("ho_light", d, card.card_data_rows()) == ROW  # nothing rendered here: the card's Data row, not the metrics table's
    write_split(tmp_path / "data" / "ho_light", 40)
    assert card.data_row("ho_light", d, card.card_data_rows()) == ROW
    write_split(tmp_path / "data2" / "ho_light", 80)
    monkeypatch.setattr(card, "DATA", tmp_path / "data2")
    assert card.data_row("ho_light", d, card.card_data_rows()).startswith("| ho_light | 80 | pipe 80 | murky |")
