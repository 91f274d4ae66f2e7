#!/usr/bin/env bash
# Data-parallel training of the small preset on this machine's cores: 2 MPI
# ranks x 1 thread against 1 rank x 2 threads, at global batch 16 and 64,
# rounds alternating between the configurations (machines are noisy). Each
# run times STEPS steps after two warm-up steps (bench_data_parallel); the
# table gives the medians over rounds of each run's median step, and of the
# time rank 0 spent in the communicator per step (the gradient sum, including
# any wait for the slower rank).
#
#   benchmarks/data_parallel.sh [build dir (build/bench-native)] [rounds (5)] [steps (8)]
#
# Build first: cmake -S . -B build/bench-native -DCMAKE_BUILD_TYPE=Release -DHAZE_BUILD_BENCHMARKS=ON
#              -DHAZE_BUILD_TESTS=OFF -DHAZE_BUILD_EXAMPLES=OFF && cmake --build build/bench-native
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:-build/bench-native}/benchmarks/bench_data_parallel
rounds=${2:-5} steps=${3:-8}
[ -x "$bench" ] || { echo "no $bench: build the benchmarks with HAZE_MPI first (see this script's header)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=PASSIVE
# name | ranks | threads | batch per rank | accumulation | sum
configs=(
  "2 ranks x 1 thread, rank-order sum|2|1|8|1|ordered"
  "2 ranks x 1 thread, MPI_Allreduce|2|1|8|1|any"
  "1 rank x 2 threads, batch 16|1|2|16|1|ordered"
  "1 rank x 2 threads, batch 8 x accumulation 2|1|2|8|2|ordered"
  "2 ranks x 1 thread, rank-order sum|2|1|32|1|ordered"
  "2 ranks x 1 thread, MPI_Allreduce|2|1|32|1|any"
  "1 rank x 2 threads, batch 64|1|2|64|1|ordered"
  "1 rank x 2 threads, batch 32 x accumulation 2|1|2|32|2|ordered"
)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((round = 1; round <= rounds; ++round)); do
  for i in "${!configs[@]}"; do
    IFS='|' read -r name ranks threads batch accumulation sum <<<"${configs[$i]}"
    if ((ranks > 1)); then
      line=$(OMP_NUM_THREADS=$threads mpirun -np "$ranks" "$bench" "$batch" "$accumulation" "$steps" "$sum")
    else
      line=$(OMP_NUM_THREADS=$threads "$bench" "$batch" "$accumulation" "$steps" "$sum")
    fi
    echo "$i $line" >>"$results"
  done
  echo "round $round of $rounds done" >&2
done
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; vector ISA: $(grep -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "small preset ($rounds rounds alternating, $steps steps each; medians)"
echo
echo "| configuration | global batch | ms / step | images / s | ms communicating / step | share |"
echo "|---|---|---|---|---|---|"
for i in "${!configs[@]}"; do
  IFS='|' read -r name _ <<<"${configs[$i]}"
  awk -v i="$i" -v name="$name" '
    $1 == i { for (k = 2; k < NF; k += 2) v[$k] = $(k + 1); step[n + 0] = v["step_ms"]; comm[n + 0] = v["comm_ms"]; global = v["global_batch"]; n++ }
    function median(a, n,   j, k, t) { for (j = 0; j < n; j++) for (k = j + 1; k < n; k++) if (a[k] < a[j]) { t = a[j]; a[j] = a[k]; a[k] = t }; return a[int(n / 2)] }
    END { s = median(step, n); c = median(comm, n); printf "| %s | %d | %.1f | %.1f | %.1f | %.1f%% |\n", name, global, s, global * 1000 / s, c, 100 * c / s }' "$results"
done
