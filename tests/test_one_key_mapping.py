"""docs/conventions.md: asl/convert.py is the only module that maps the canonical encoder names (MAE's and
timm's) to detectron2's and mmseg's and back. A module that maps holds a canonical name and its counterpart
side by side; outside asl/convert.py no module of the toolkit holds both (reading a file in mmseg's names, as
segmentation's loader does, is not mapping)."""
import io
import os
import tokenize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANONICAL = ("norm1", "norm2", "mlp.fc1", "mlp.fc2", "patch_embed.proj.")
# mmseg's names of the same tensors, and the prefix under which detectron2's ViTDet holds the encoder
COUNTERPART = ("ln1", "ln2", "ffn.layers", "patch_embed.projection", "backbone.net.")


def strings_of(path: str) -> list:
    with open(path) as f:
        return [tok.string for tok in tokenize.generate_tokens(io.StringIO(f.read()).readline)
                if tok.type == tokenize.STRING]


def mapping_modules(tops=("asl", "transfer", "tools", "chain")) -> list:
    """The modules whose string literals hold both a canonical name and a counterpart."""
    found = []
    for top in tops:
        for folder, _, files in os.walk(os.path.join(REPO, top)):
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, name)
                strings = strings_of(path)
                if all(any(n in s for s in strings for n in names) for names in (CANONICAL, COUNTERPART)):
                    found.append(os.path.relpath(path, REPO))
    return found


def test_only_asl_convert_maps_the_encoder_s_key_names():
    assert mapping_modules() == [os.path.join("asl", "convert.py")]
