# One device call: the scaling sweep of issue 28 (three GPT sizes, equal wall time, one GPU).
# Usage: bash .gpu/sweep.sh BUDGET_S CAL_MINUTES [extra --set for every run]
set -u
BUDGET=${1:-540}; CAL=${2:-0.4}; shift 2; EXTRA=("$@")
T0=$(date +%s); DEADLINE=$((T0 + BUDGET))
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
PY=${PY:-python3}
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/summary.txt; }
log "start $(nvidia-smi -L 2>/dev/null | head -1) nproc=$(nproc)"
$PY -c "import torch,transformers,accelerate;print(torch.__version__,transformers.__version__,accelerate.__version__,torch.cuda.is_available())" 2>&1 | tee -a $OUT/summary.txt
mkdir -p data/sd runs/logs && cp .gpu/data/* data/sd/ && xz -dc .gpu/train.txt.xz > data/sd/train.txt
$PY - <<'PY' 2>&1 | tail -2 | tee -a $OUT/summary.txt
from pathlib import Path
from textopia.data.corpus import read_split
from textopia.data.tokenizer import PromptTokenizer
from textopia.data.batching import TokenizedPrompts
d = Path("data/sd"); tok = PromptTokenizer.from_dir(d)
t = TokenizedPrompts.cached(read_split(d, "train"), tok, d / f"train.{len(tok)}.ids.safetensors")
print("tokens", len(t.ids))
PY
log "data ready"
NAMES="6x384 8x384 stage7"
run() { # name out_dir max_steps max_minutes [--set ...]
  local n=$1 o=$2 s=$3 m=$4; shift 4
  $PY -m textopia.cli train --config configs/gpt-gpu-$n.toml --no-progress --overwrite \
    --set train.out_dir=$o --set train.max_steps=$s --set train.max_minutes=$m "${EXTRA[@]/#/--set=}" "$@" > runs/logs/$n-$(basename $o).log 2>&1
}
for n in $NAMES; do run $n runs/cal-$n 100000 $CAL --set train.eval_every=0 --set train.log_every=20 & done; wait
log "calibrated"
$PY .gpu/plan.py $DEADLINE $NAMES | tee runs/plan.txt | tee -a $OUT/summary.txt
while read n steps mins rate; do
  run $n runs/gpt-gpu-$n $steps $mins --set train.eval_every=$(( steps / 3 + 1 )) &
done < runs/plan.txt
wait
log "trained"
for n in $NAMES; do
  ( $PY -m textopia.cli export runs/gpt-gpu-$n runs/export-$n --dtype float16 > runs/logs/export-$n.log 2>&1 &&
    $PY -m textopia.cli eval runs/export-$n --split test --json --data-dir data/sd > runs/eval-$n.json ${EVAL_LIMIT:+--limit $EVAL_LIMIT} 2>> runs/logs/export-$n.log ) &
done
$PY -m textopia.cli eval src/textopia/assets/default --split test --json --data-dir data/sd ${EVAL_LIMIT:+--limit $EVAL_LIMIT} > runs/eval-shipped.json 2>/dev/null &
wait
log "evaluated"
for f in runs/eval-*.json; do echo "$f $($PY -c "import json,sys;d=json.load(open('$f'));print(d.get('perplexity'), d.get('ce_nats_per_token'))" 2>&1)" | tee -a $OUT/summary.txt; done
# the larger candidate with the lower test perplexity comes back, and stage 7; the rest as logs
best=$($PY - <<'PY'
import json
p = {n: json.load(open(f"runs/eval-{n}.json")).get("perplexity", 1e9) for n in ("6x384", "8x384") if open(f"runs/eval-{n}.json").read().strip()}
print(min(p, key=p.get) if p else "")
PY
)
log "best large: $best"
for n in $best stage7; do
  [ -f runs/export-$n/model.safetensors ] && split -b 15M runs/export-$n/model.safetensors $OUT/$n.safetensors.part-
done
tar czf $OUT/runs.tgz --exclude='*.safetensors' runs/export-* runs/eval-*.json runs/gpt-gpu-*/metrics.jsonl runs/cal-*/metrics.jsonl runs/logs 2>/dev/null
log "done"; ls -la $OUT
