"""Sums an `ncu --csv --page raw --metrics gpu__time_duration.sum` report per kernel and per op
class (scripts/profile-step.sh), largest first."""
import csv
import re
import sys
from collections import defaultdict

# Op classes by kernel name, first match wins.
CLASSES = [
    ("GEMMs (cuBLASLt)", r"gemm|cutlass|xmma|nvjet|cublas"),
    ("selective scan", r"scan_"),
    ("attention", r"flash_|attention_"),
    ("AdamW and gradient norm", r"adamw|sum_squares|sum_partials"),
    ("conv + SiLU", r"conv_"),
    ("RMSNorm", r"rmsnorm_"),
    ("SwiGLU", r"swiglu_"),
    ("RoPE", r"rope_"),
    ("cross-entropy", r"cross_entropy|partials_kernel"),
    ("embedding", r"embedding_|meta_grad|table_grad"),
    ("casts, copies, averages", r"cast_|copy_|average_|scale_"),
]


def main(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = next(i for i, r in enumerate(rows) if "Kernel Name" in r)
    names = rows[header]
    name_col, time_col = names.index("Kernel Name"), names.index("gpu__time_duration.sum")
    unit = rows[header + 1][time_col] if not re.match(r"^[\d.,]+$", rows[header + 1][time_col]) else "ns"
    scale = {"ns": 1e-6, "nsecond": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0}[unit]
    per_kernel, count = defaultdict(float), defaultdict(int)
    for r in rows[header + 1:]:
        if len(r) <= time_col or not re.match(r"^[\d.,]+$", r[time_col]):
            continue
        # Without the parameter list (and C++ noise), so launches of one kernel add up.
        name = r[name_col].replace("(anonymous namespace)::", "")
        name = re.sub(r"^void ", "", re.sub(r"\(.*", "", name)).strip() or r[name_col]
        per_kernel[name] += float(r[time_col].replace(",", "")) * scale
        count[name] += 1
    total = sum(per_kernel.values())
    per_class, class_count = defaultdict(float), defaultdict(int)
    for name, ms in per_kernel.items():
        label = next((c for c, pattern in CLASSES if re.search(pattern, name, re.I)), "other")
        per_class[label] += ms
        class_count[label] += count[name]
    print(f"total kernel time {total:.1f} ms in {sum(count.values())} launches\n")
    print("| op class | launches | ms | share |\n|---|---|---|---|")
    for label, ms in sorted(per_class.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {class_count[label]} | {ms:.1f} | {100 * ms / total:.0f}% |")
    print("\n| kernel | launches | ms |\n|---|---|---|")
    for name, ms in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:40]:
        print(f"| {name[:90]} | {count[name]} | {ms:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
