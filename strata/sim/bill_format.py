"""The bill document (strata.sim.pricing.summarize) as text tables or CSV, for `strata bill`."""

from __future__ import annotations

import csv
import io


def _money(x: float) -> str:
    return f"${x:,.2f}" if abs(x) >= 0.01 or x == 0 else f"${x:,.6f}"


def as_text(doc: dict) -> str:
    """A table per service (lines largest first) and the total."""
    out = [f"Bill {doc['from']} .. {doc['to']} ({doc['currency']}, prices as of {doc['prices_as_of']})", ""]
    for svc in doc["services"].values():
        out.append(f"{svc['name']}")
        for line in svc["lines"]:
            if "usage_type" not in line and "resource" not in line:
                continue  # by service: the subtotal is the line
            label = line.get("usage_type") or line.get("resource") or ""
            if "resource" in line and "usage_type" not in line:
                label = line["resource"] or "(account)"
            qty = f"{line['quantity']:,.4f} {line['unit']}" if "quantity" in line else ""
            out.append(f"  {label:<48} {qty:>28} {_money(line['cost']):>14}")
        out.append(f"  {'subtotal':<48} {'':>28} {_money(svc['total']):>14}")
        out.append("")
    out.append(f"{'Total':<50} {'':>28} {_money(doc['total']):>14}")
    return "\n".join(out)


def as_csv(doc: dict) -> str:
    """One row per line: service, usage type or resource, quantity, unit, cost."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["service", "usage_type", "resource", "quantity", "unit", "cost"])
    for svc in doc["services"].values():
        for line in svc["lines"]:
            writer.writerow(
                [
                    svc["name"],
                    line.get("usage_type", ""),
                    line.get("resource", ""),
                    line.get("quantity", ""),
                    line.get("unit", ""),
                    f"{line['cost']:.10f}",
                ]
            )
    writer.writerow(["Total", "", "", "", "", f"{doc['total']:.10f}"])
    return buf.getvalue()
