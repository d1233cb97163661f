# Second device call: stage 7's weights trained on at two peak learning rates, alone on the GPU.
set -u
T0=$(date +%s); export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
OUT=${OUT:-/tmp/out}; mkdir -p $OUT; PY=${PY:-python3}; STEPS=${1:-5000}; MINS=${2:-3.7}; shift 2
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $OUT/summary.txt; }
mkdir -p data/sd runs/logs && cp .gpu/data/* data/sd/ && xz -dc .gpu/train.txt.xz > data/sd/train.txt
$PY -c "
from pathlib import Path
from textopia.data.corpus import read_split
from textopia.data.tokenizer import PromptTokenizer
from textopia.data.batching import TokenizedPrompts
d = Path('data/sd'); tok = PromptTokenizer.from_dir(d)
print('tokens', len(TokenizedPrompts.cached(read_split(d, 'train'), tok, d / f'train.{len(tok)}.ids.safetensors').ids))" 2>&1 | tail -1
log "data ready"
for v in "a 3e-4 8" "b 1.5e-4 9"; do set -- $v
  $PY -m textopia.cli train --config configs/gpt-gpu-stage7.toml --no-progress --overwrite --set model.init_from=.gpu/stage7 \
    --set train.out_dir=runs/s8$1 --set train.lr=$2 --set train.seed=$3 --set train.max_steps=$STEPS --set train.max_minutes=$MINS \
    --set train.eval_every=$(( STEPS / 2 )) --set train.num_workers=6 "${@:4}" > runs/logs/s8$1.log 2>&1 &
done; wait
log "trained"
for v in a b; do
  ( $PY -m textopia.cli export runs/s8$v runs/export-s8$v --dtype float16 > runs/logs/export-s8$v.log 2>&1 &&
    $PY -m textopia.cli eval runs/export-s8$v --split test --json --data-dir data/sd ${EVAL_LIMIT:+--limit $EVAL_LIMIT} > runs/eval-s8$v.json 2>> runs/logs/export-s8$v.log ) &
done; wait
log "evaluated"
for v in a b; do log "s8$v test $($PY -c "import json;d=json.load(open('runs/eval-s8$v.json'));print(d['perplexity'])" 2>&1) $(grep valid runs/s8$v/metrics.jsonl | tail -1 | cut -c1-120)"; done
for v in a b; do [ -f runs/export-s8$v/model.safetensors ] && cp runs/export-s8$v/model.safetensors $OUT/s8$v.safetensors; done
tar czf $OUT/runs8.tgz --exclude='*.safetensors' runs/export-s8* runs/eval-s8*.json runs/s8*/metrics.jsonl runs/logs 2>/dev/null
log "done"
