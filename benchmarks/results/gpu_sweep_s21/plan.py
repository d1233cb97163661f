"""Steps per run from the calibration runs' measured steps/s, so each cosine ends in the budget."""
import json, sys, time
deadline, names = float(sys.argv[1]), sys.argv[2:]
overhead = float(__import__("os").environ.get("OVERHEAD_S", "95"))  # start-up, final validate+save, export, eval
left = deadline - time.time() - overhead
for name in names:
    recs = [json.loads(l) for l in open(f"runs/cal-{name}/metrics.jsonl") if '"train"' in l]
    if len(recs) >= 2:
        a, b = recs[0], recs[-1]  # rate after the first log window (CUDA warm-up excluded)
        rate = (b["step"] - a["step"]) / max(b["elapsed_s"] - a["elapsed_s"], 1e-9)
    else:
        st = json.load(open(f"runs/cal-{name}/trainer_state.json"))
        rate = st["step"] / max(st["elapsed_s"], 1e-9)
    steps = max(200, int(rate * left * 0.93))
    print(name, steps, f"{left / 60 + 0.5:.2f}", f"{rate:.2f}")
