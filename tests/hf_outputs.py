"""What exported model folders give when loaded with transformers' Auto classes: token ids,
the class loaded and the logits of a padded batch. The sharing tests call `outputs` in their
own interpreter (the transformers the project installs) and run this file in a child whose
path puts another transformers first (4.x), so that the folders are checked under both:

    python tests/hf_outputs.py OUT.pt FOLDER:ARCHITECTURE ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import transformers

from trainers.architectures import ARCHITECTURES

TEXTS = ["In the beginning God", "said <eos> light"]  # within the tiny models' positions


@torch.no_grad()
def outputs(folder: Path, architecture: str) -> dict:
    """The ids of each text, the batch of both padded on the right (and, for the encoder,
    every third real position masked; for the encoder-decoder, decoder inputs), the class
    loaded and its logits."""
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    auto = getattr(transformers, ARCHITECTURES[architecture].hf_class)
    model = auto.from_pretrained(folder).eval()
    out = {"ids": [tok(t)["input_ids"] for t in TEXTS], "mask": mask, "inputs": ids,
           "specials": [tok.pad_token_id, tok.mask_token_id, tok.eos_token_id],
           "class": type(model).__name__, "version": transformers.__version__}  # fmt: skip
    if architecture == "decoder":
        out["logits"] = model(input_ids=ids, attention_mask=mask).logits
    elif architecture == "encoder":
        every_third = (torch.arange(ids.shape[1]) % 3 == 1) & mask.bool()
        out["inputs"] = ids.masked_fill(every_third, tok.mask_token_id)
        out["logits"] = model(input_ids=out["inputs"], attention_mask=mask).logits
    else:
        start = torch.full((len(TEXTS), 1), tok.pad_token_id)
        out["decoder_inputs"] = torch.cat([start, ids[:, :7]], dim=1)
        out["logits"] = model(input_ids=ids, attention_mask=mask,
                              decoder_input_ids=out["decoder_inputs"]).logits  # fmt: skip
    return out


if __name__ == "__main__":
    target, *folders = sys.argv[1:]
    found = {}
    for entry in folders:
        folder, _, architecture = entry.rpartition(":")
        found[Path(folder).name] = outputs(Path(folder), architecture)
    torch.save(found, target)
