"""The results table: every number read from a transfer run's metrics.json (docs/conventions.md), none typed in.
Rows are initialisations (ASL, MAE, random, ...), columns the metrics the tasks declare (chain.task); written as
Markdown, JSON and a PNG bar chart."""
import json
import os

from asl.records import write_json


def collect(metrics_files, columns) -> dict:
    """{init method: {column label: (value, source file)}} from metrics.json files of transfer stages; `columns`:
    (stage, metric key, label, chance key) as the tasks declare them (chain.task)."""
    table = {}
    for path in metrics_files:
        with open(path) as f:
            m = json.load(f)
        for stage, key, label, _ in columns:
            if m.get("stage") == stage and key in m.get("metrics", {}):
                table.setdefault(m["init"]["method"], {})[label] = (m["metrics"][key], path)
    return table


def write_table(table: dict, out_prefix: str, columns, title: str = "", chance: dict = None, budgets=()) -> dict:
    """Write OUT.md, OUT.json and OUT.png; returns the paths.

    `columns`: as for `collect`. `chance`: {chance key: score of a trivial predictor} (majority class,
    background everywhere, no detection), shown as a row in italics and as dashes on the chart, so that what is
    above chance shows at a glance.
    `budgets`: lines under the table (training lengths, data, seed).
    """
    labels = [label for _, _, label, _ in columns if any(label in row for row in table.values())]
    chance = {label: chance[key] for _, _, label, key in columns if key in (chance or {}) and label in labels}
    order = sorted(table, key=lambda m: {"asl": 0, "mae": 1, "random": 9}.get(m, 5))
    lines = [f"| init | {' | '.join(labels)} |", "|---" * (len(labels) + 1) + "|"]
    for method in order:
        cells = [f"{table[method][c][0]:.1f}" if c in table[method] else "—" for c in labels]
        lines.append(f"| {method} | {' | '.join(cells)} |")
    if chance:
        lines.append("| *chance* | " + " | ".join(f"*{chance[c]:.1f}*" if c in chance else "—" for c in labels)
                     + " |")
    md = (f"{title}\n\n" if title else "") + "\n".join(lines) + "\n"
    if budgets:
        md += "\n" + "".join(f"* {line}\n" for line in budgets)
    paths = {"markdown": out_prefix + ".md", "json": out_prefix + ".json", "chart": out_prefix + ".png"}
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    with open(paths["markdown"], "w") as f:
        f.write(md)
    rows = {m: {c: {"value": v, "source": s} for c, (v, s) in row.items()} for m, row in table.items()}
    write_json(paths["json"], {"rows": rows, "chance": chance, "budgets": list(budgets)})
    _chart(table, order, labels, paths["chart"], title, chance)
    return paths


def _chart(table, order, labels, path, title, chance):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 * max(len(labels), 1) + 2, 3.5))
    width = 0.8 / max(len(order), 1)
    for i, method in enumerate(order):
        xs = [j + i * width for j, c in enumerate(labels) if c in table[method]]
        ys = [table[method][c][0] for c in labels if c in table[method]]
        bars = ax.bar(xs, ys, width, label=method)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    with_chance = [j for j, label in enumerate(labels) if label in chance]
    for j in with_chance:
        ax.hlines(chance[labels[j]], j - width / 2, j + width * (len(order) - 0.5), colors="k", linestyles="--",
                  linewidth=1, label="chance" if j == with_chance[0] else None)
    ax.set_xticks([j + width * (len(order) - 1) / 2 for j in range(len(labels))], labels)
    ax.set_ylabel("% (higher is better)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
