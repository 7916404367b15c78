#!/bin/bash
# The README's evidence on sudoku6_hard (issue 24), after the two sweeps have run:
#   python -m sweeper run search_spaces/evidence/hard_methods_cpu.yaml
#   python -m sweeper run search_spaces/evidence/hard_wta_cpu.yaml
#   bash benchmarks/evidence_runs.sh [STORAGE [OUT]]      (default runs/sweeps, runs/evidence)
# Every table is also written as JSON under OUT. LIMIT=200 bash ... evaluates a seeded subset.
set -eu
cd "$(dirname "$0")/.."
STORAGE=${1:-runs/sweeps}
M=$STORAGE/hard_methods_cpu
W=$STORAGE/hard_wta_cpu
O=${2:-runs/evidence}
mkdir -p "$O"
LIMIT=${LIMIT:-0}
TRM="TRM=recursion.latent_init=fixed,recursion.damping=0.0,recursion.depth_schedule=constant"
RI="RI=recursion.latent_init=normal,recursion.damping=0.0"
RINI="RI+NI=recursion.latent_init=normal,recursion.damping=0.05"
CGAR="CGAR=recursion.depth_schedule=cgar"
RT="rand_T=recursion.depth_schedule=random,recursion.random_spread_t=1"
RN="rand_n=recursion.depth_schedule=random,recursion.random_spread_n=1"
RS="rand_Nsup=recursion.depth_schedule=random,recursion.random_spread_nsup=2"
K1="K1=recursion.chains=1"
K4="K4_same_puzzles=recursion.chains=4,train.batch_rows=0"
K4R="K4_same_rows=recursion.chains=4,train.batch_rows=64"
echo "=== E1 depth and ACT read-out, every methods arm $(date)"
python benchmarks/evidence_tts.py $M --arms "$TRM;$RI;$RINI;$CGAR;$RT;$RN;$RS" --against depth=8,rule=last --jobs 2 \
  --out $O/depth.json --plot $O/depth.png -- --depth 8,16,32,64 --select last,halt_first --limit $LIMIT | tee $O/depth.txt
echo "=== E2 breadth, EqR arms $(date)"
python benchmarks/evidence_tts.py $M --arms "$RI;$RINI" --against depth=16,breadth=1,rule=last --jobs 2 \
  --out $O/breadth.json --plot $O/breadth.png -- --depth 16 --breadth 1,4,16 --select last,top1_converged,top1_converged_paper,majority,prob_avg,oracle --limit $LIMIT | tee $O/breadth.txt
python benchmarks/evidence_tts.py $M --ensemble --arms "$TRM;$RINI" --jobs 2 \
  --out $O/methods_seeds.json -- --select last,halt_first,prob_avg,majority,oracle --limit $LIMIT | tee $O/methods_seeds.txt
echo "=== E4 Ren & Liu: 6 cyclic digit relabellings, halted majority $(date)"
python benchmarks/evidence_tts.py $M --arms "$TRM" --against rule=last --jobs 2 \
  --out $O/cycles_act.json -- --transforms identity,cycle,cycle,cycle,cycle,cycle --act --select last,majority,prob_avg,oracle --limit $LIMIT | tee $O/cycles_act.txt
python benchmarks/evidence_tts.py $M --arms "$TRM" --against rule=last --jobs 2 \
  --out $O/cycles_full.json -- --transforms identity,cycle,cycle,cycle,cycle,cycle --select last,majority,prob_avg,oracle --limit $LIMIT | tee $O/cycles_full.txt
echo "=== E5 step cost of the methods, interleaved $(date)"
python benchmarks/bench_methods.py --preset sudoku6_hard --rounds 7 --steps 20 --threads 2 | tee $O/bench_methods.txt
echo "=== E3a halt-first over chains (restarts of the chain inits) $(date)"
python benchmarks/evidence_tts.py $W --arms "$K1;$K4;$K4R" --against breadth=1,rule=last --jobs 2 \
  --out $O/wta_chains.json -- --breadth 1,4 --select last,halt_first,prob_avg,majority,oracle --limit $LIMIT | tee $O/wta_chains.txt
echo "=== E3b halt-first over seeds (4-checkpoint ensembles) $(date)"
python benchmarks/evidence_tts.py $W --ensemble --arms "$K1;$K4;$K4R" --jobs 2 \
  --out $O/wta_seeds.json -- --select last,halt_first,prob_avg,majority,oracle --limit $LIMIT | tee $O/wta_seeds.txt
echo "=== training: every arm against TRM (difference, CI, Welch, P(B > A)); time to 75%"
python -m sweeper report hard_methods_cpu --storage "$STORAGE" --no-aim --format md
for b in recursion.latent_init=normal,recursion.damping=0.0 recursion.damping=0.05 recursion.depth_schedule=cgar \
         recursion.random_spread_t=1 recursion.random_spread_n=1 recursion.random_spread_nsup=2; do
  python -m sweeper report hard_methods_cpu:recursion.latent_init=fixed,recursion.damping=0.0,recursion.depth_schedule=constant \
    "hard_methods_cpu:$b" --storage "$STORAGE" --no-aim --format md | grep "^On "
done
python -m sweeper report hard_wta_cpu --storage "$STORAGE" --no-aim --format md
python benchmarks/time_to_target.py $M --target 0.75 --arms "$TRM;$RINI;$CGAR" --cost "CGAR=0:0.58,0.3:0.84,0.6:1;RI+NI=0:1.15"  # costs: bench_methods above
echo "=== done $(date)"
