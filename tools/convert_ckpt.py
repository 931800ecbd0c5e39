#!/usr/bin/env python
"""Convert an encoder checkpoint (this project's pretraining checkpoint, an MAE release, a timm ViT, or a file
this tool wrote) into detectron2 (ViTDet), mmseg (MAE backbone) or timm/MAE weights. Prints what was mapped,
what was dropped on purpose and what the target initialises itself; fails on anything else. This is the one way
into the frameworks: tools/train_det.py and tools/train_seg.py read only the files it writes.

Example:
    python tools/convert_ckpt.py work_dirs/pretrain/toy_asl/checkpoints/last.pth --to detectron2 \\
        -o work_dirs/weights/toy_asl_d2.pth
    python tools/convert_ckpt.py mae_pretrain_vit_base.pth --to mmseg --img-size 512 -o mae_vitb_mmseg.pth
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.checkpoint import load_encoder, save_atomic  # noqa: E402
from asl.cli import UserError, main_guard  # noqa: E402
from asl.convert import FILE_KEY, TARGETS, convert  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="checkpoint to convert (.pth or .safetensors)")
    parser.add_argument("--to", required=True, choices=TARGETS, help="target framework")
    parser.add_argument("-o", "--output", required=True, help="file to write (.pth; .safetensors for timm)")
    parser.add_argument("--img-size", type=int, help="resize pos_embed to this image size (default: keep)")
    parser.add_argument("--final-norm", action="store_true",
                        help="mmseg only: keep the final norm (as ln1, for MAE(final_norm=True))")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


@main_guard
def main(argv=None):
    args = parse_args(argv)
    if os.path.exists(args.output) and os.path.samefile(args.src, args.output):
        raise UserError("the output would overwrite the source checkpoint; choose another -o")
    if args.output.endswith(".safetensors") and args.to != "timm":
        raise UserError(f"{args.to} reads torch files: give -o a .pth name")
    state_dict, info = load_encoder(args.src)
    out, report = convert(state_dict, info, args.to, args.img_size, args.final_norm)
    # what the adapters report and check: the pretraining method and the heads (not readable off the tensors)
    meta = {"method": info["method"], "source": os.path.abspath(args.src), "num_heads": info["num_heads"],
            "num_heads_source": info["num_heads_source"]}
    save_atomic(out if args.output.endswith(".safetensors") else {FILE_KEY[args.to]: out, "meta": meta},
                args.output)
    print(report.text())
    print(f"wrote {args.output} ({len(out)} tensors, {args.to})")


if __name__ == "__main__":
    main()
