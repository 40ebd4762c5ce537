#!/usr/bin/env bash
# The checks that CPU-only CI cannot make, as one short run on a CUDA machine.
#
# Here (a machine with pip access to the wheels), once:
#     bash benchmarks/gpu_check.sh --fetch
# downloads into .whl/ (git-ignored) the packages the GPU image lacks, for its
# Python 3.12.  Then, on the GPU machine (the session's device tool):
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=560)
# and back here, on CPU:
#     python benchmarks/cuda_roundtrip.py check <files_at>/cuda_models.pkl.gz
#
# On the GPU machine it installs the wheels into /tmp/site (nothing is installed
# into its Python), takes the library from this checkout, and writes under
# $OUT (default /tmp/gpu_check):
#   env.txt             versions and the GPU
#   tests.txt           the test suite with CUDA present: the classifier's
#                       device="auto" puts every fit of the suite on the GPU,
#                       and the tests marked cuda run instead of skipping
#   cuda_models.pkl.gz  every method fitted on the GPU (benchmarks/cuda_roundtrip.py)
#   speed.txt/.json     benchmarks/speed.py: the CPU case and its CUDA cases
#                       (784-256-256-10 MLP at 10k rows; 200k x 512 embeddings,
#                       100 classes, batch 512, with peak GPU memory)
#   accuracy.txt/.json  benchmarks/accuracy.py --device cuda on two digits cases
#                       (its table again, cleanly: accuracy.py --report accuracy.json)
# (eight files: as many as the device tool brings back)
# Each part has its own time limit, so that a slow one cannot take the rest
# with it; the whole stays under the device tool's 10 minutes a command.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(skorch==1.4.0 scikit-learn==1.9.1 mlxtend==0.25.0 mnist1d==0.0.2.post1
        cleanlab==2.9.0 termcolor==3.3.0)

if [ "${1:-}" = "--fetch" ]; then
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}"
    exit $?
fi

OUT=${OUT:-/tmp/gpu_check}
DEVICE=${GPU_CHECK_DEVICE:-cuda}  # GPU_CHECK_DEVICE=cpu: try the script without a GPU
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi

part() {  # part NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start))s"
    tail -n 25 "$OUT/$name.txt"
}

{
    nvidia-smi -L
    python3 -c "import sys, torch, sklearn, skorch; print(sys.version); \
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''); \
print('scikit-learn', sklearn.__version__, 'skorch', skorch.__version__)"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

part tests 200 python3 -m pytest -q -p no:cacheprovider -n 8 -m "not slow" \
    --ignore=tests/test_docs.py --ignore=tests/test_notebook.py \
    --ignore=tests/test_lint.py tests sklearn_noisy
part roundtrip 60 python3 benchmarks/cuda_roundtrip.py write "$OUT/cuda_models.pkl.gz" \
    --device "$DEVICE"
part speed 170 python3 benchmarks/speed.py --epochs 2 --repeats 2 --no-memory --no-flops \
    --json "$OUT/speed.json"
part accuracy 90 python3 benchmarks/accuracy.py --datasets digits \
    --cases symmetric:0.4,symmetric:0.8 --seeds 1 --peers "" --device "$DEVICE" \
    --json "$OUT/accuracy.json"
