#!/usr/bin/env python3
"""Build Calculon (calculon-ai/calculon) inputs for the Megatron-style rows of
bench/data/planner_corpus.json, run Calculon's `llm` command on each, and
write calculon_predictions.csv (bench/data/calculon_predictions.csv is its
output for Calculon caa4b11f8fe1 with its shipped system files, unedited).

Usage, with a Calculon checkout in $CALCULON and a work folder in $WORK
(inputs/ and the CSV are written there):
  CALCULON=... WORK=... /usr/bin/python3 bench/calculon/make_inputs.py
  ... make_inputs.py --no-run   # only generate inputs/

Needs Debian's python3-numpy, python3-pandas, python3-psutil (Calculon's
package imports them) -- hence /usr/bin/python3, not a pyenv python.
"""
import argparse
import csv
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(REPO, 'bench', 'data', 'planner_corpus.json')
HERE = os.path.abspath(os.environ.get('WORK', '.'))
CALCULON = os.path.abspath(os.environ.get('CALCULON', os.path.join(HERE, 'calculon')))
INPUTS = os.path.join(HERE, 'inputs')
OUT_CSV = os.path.join(HERE, 'calculon_predictions.csv')
VARIANT = 'brief'

# Calculon's shipped system files, used unedited. Both have an 8-GPU NVLink
# tier 0 ("size": 8) and an InfiniBand tier 1.
SYSTEMS = {
  'A100-80GB': 'systems/a100_80g.json',
  'H100': 'systems/h100_80g_nvl8.json',
}
SYSTEM_NODE_SIZE = 8

# Rows that name a preset instead of a model: shapes of trainperf's presets
# (include/trainperf/presets.hpp).
PRESETS = {
  'gpt3-175b': dict(layers=96, hidden=12288, heads=96, ffn=4 * 12288,
                    vocab=50304, mlp='gelu', max_seq=2048),
  'llama3-8b': dict(layers=32, hidden=4096, heads=32, kv_heads=8, ffn=14336,
                    vocab=128256, mlp='swiglu', max_seq=8192),
  'llama3-70b': dict(layers=80, hidden=8192, heads=64, kv_heads=8, ffn=28672,
                     vocab=128256, mlp='swiglu', max_seq=8192),
  'llama3-405b': dict(layers=126, hidden=16384, heads=128, kv_heads=8,
                      ffn=53248, vocab=128256, mlp='swiglu', max_seq=131072),
}


def row_model(row):
  if 'model' in row:
    return row['model']
  return PRESETS[row['preset']]


def selected(row):
  return row['framework'] in ('megatron', 'megatron-core')


def family(row):
  return 'SC21' if row['source_family'] == 'megatron-sc21' else 'DGXC'


def why_not_expressible(row, m):
  """Returns a reason string if Calculon (caa4b11) cannot express the row."""
  reasons = []
  if row.get('cp', 1) > 1:
    reasons.append(f"context parallelism cp={row['cp']} (Calculon has only "
                   "TP/PP/DP)")
  if m.get('mlp') == 'swiglu':
    reasons.append('SwiGLU MLP (Calculon models a 2-matrix GELU MLP only; no '
                   'gated-MLP field)')
  if row['device'] not in SYSTEMS:
    reasons.append(f"no shipped system file for {row['device']}")
  if row['per_node'] != SYSTEM_NODE_SIZE:
    reasons.append(f"per_node={row['per_node']} != system node size 8")
  return '; '.join(reasons)


def build(row):
  m = row_model(row)
  hidden, heads = m['hidden'], m['heads']
  assert hidden % heads == 0
  app = {
    'hidden': hidden,
    'feedforward': m['ffn'],
    'seq_size': row['seq'],
    'attn_heads': heads,
    'attn_size': hidden // heads,
    'num_blocks': m['layers'],
  }
  tp, pp, gpus = row['tp'], row['pp'], row['gpus']
  assert gpus % (tp * pp) == 0
  dp = gpus // (tp * pp)
  sp = bool(row['sp'])
  recompute = {'full': 'full', 'selective': 'attn_only',
               'none': 'none'}[row['recompute']]
  flash_remap = (VARIANT == 'flash_as_attn_only' and row.get('flash')
                 and recompute == 'none')
  if flash_remap:
    recompute = 'attn_only'
  # Calculon's systems define only "float16"/"float8" throughput tables;
  # "bfloat16" is a known 2-byte type in System.TypeSizes but has no entry in
  # the shipped system files, so bf16 runs as float16 (same 2 bytes, same
  # peak tensor throughput on A100/H100).
  datatype = 'float16'
  tp_overlap = 'none'
  if tp > 1 and row.get('tp_comm_overlap'):
    tp_overlap = 'ring'
  exe = {
    'num_procs': gpus,
    'tensor_par': tp,
    'pipeline_par': pp,
    'data_par': dp,
    # network assignment as in Calculon's example/validation executions:
    # TP on the NVLink tier, PP and DP on the inter-node tier.
    'tensor_par_net': 0,
    'pipeline_par_net': 1,
    'data_par_net': 1,
    'batch_size': row['gbs'],
    'microbatch_size': row['mbs'],
    'datatype': datatype,
    # Calculon's own Megatron replications (validation/seqsel/*) use false.
    'fused_activation': False,
    # Calculon has only multihead / multiquery; GQA (kv_heads) -> multihead.
    'attention_type': 'multihead',
    'activation_recompute': recompute,
    'pipeline_interleaving': row['vpp'] if pp > 1 else 1,
    'optimizer_sharding': bool(row['distributed_optimizer']) and dp > 1,
    # sequence parallelism in Calculon == tensor_par_comm_type "rs_ag";
    # without SP Megatron all-reduces ("ar"), as in validation/seqsel.
    'tensor_par_comm_type': 'rs_ag' if sp else 'ar',
    'tensor_par_overlap': tp_overlap,
    # validation/seqsel: SP runs redo the all-gather in backward unless
    # full recompute (Calculon forbids redo with full recompute).
    'seq_par_ag_redo': sp and recompute != 'full',
    'data_par_overlap': bool(row.get('overlap_grad_reduce', False)) and dp > 1,
    'weight_offload': False,
    'activations_offload': False,
    'optimizer_offload': False,
    'training': True,
  }
  notes = []
  if m.get('kv_heads') and m['kv_heads'] != heads:
    notes.append(f"GQA kv_heads={m['kv_heads']} modeled as multihead")
  if m.get('vocab'):
    notes.append(f"embedding/LM head (vocab {m['vocab']}) not modeled by "
                 "Calculon")
  if row['dtype'] == 'bf16':
    notes.append('bf16 run as float16 (no bfloat16 table in system file)')
  if row.get('flash'):
    notes.append('flash/fused attention not modeled (Calculon materializes '
                 'seq^2 scores)')
  if tp_overlap != 'none':
    notes.append("TP comm overlap -> 'ring'")
  if flash_remap:
    notes.append('SENSITIVITY: recompute none -> attn_only for flash')
  return app, exe, notes


def nomemcheck(app_path, exe_path, sys_path):
  """Diagnostic only: Calculon's own time model for a configuration its
  memory check rejects (runs Llm.run() minus _check_mem_caps())."""
  sys.path.insert(0, CALCULON)
  import logging
  import calculon
  from calculon.llm import Llm
  app = Llm.Application(calculon.io.read_json_file(app_path))
  exe = Llm.Execution.from_json(calculon.io.read_json_file(exe_path))
  syst = calculon.System(calculon.io.read_json_file(sys_path))
  m = Llm(app, logging.getLogger())
  m.compile(syst, exe)
  m._compute_block_stats()
  m._compute_batch_stats()
  print(json.dumps({'total_time': m.get_total_time(),
                    'mem_tier1_GiB': m.get_mem_tier1_cap_req() / 2**30}))


def run_one(rid, app_path, exe_path, sys_path):
  out_path = os.path.join(INPUTS, rid, 'stats.json')
  if os.path.exists(out_path):
    os.remove(out_path)
  env = dict(os.environ, PYTHONPATH=CALCULON)
  p = subprocess.run(
    [sys.executable, os.path.join(CALCULON, 'bin', 'calculon'), 'llm',
     app_path, exe_path, sys_path, out_path],
    cwd=CALCULON, env=env, capture_output=True, text=True)
  log = p.stdout + p.stderr
  with open(os.path.join(INPUTS, rid, 'calculon.log'), 'w') as f:
    f.write(log)
  if p.returncode == 0 and os.path.exists(out_path):
    with open(out_path) as f:
      return 'ok', json.load(f), ''
  msg = log.strip().splitlines()[-1] if log.strip() else f'rc={p.returncode}'
  if 'Mem tier1 needs' in log or 'Mem tier2 needs' in log:
    q = subprocess.run([sys.executable, os.path.abspath(__file__),
                        '--nomemcheck', app_path, exe_path, sys_path],
                       capture_output=True, text=True)
    if q.returncode == 0:
      t = json.loads(q.stdout.strip().splitlines()[-1])['total_time']
      msg += f' [diagnostic: Calculon time with memory check skipped = {t:.4g} s]'
    return 'oom', {'total_time_nomemcheck': t} if q.returncode == 0 else None, msg
  return 'invalid', None, msg


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--no-run', action='store_true')
  ap.add_argument('--variant', choices=['brief', 'flash_as_attn_only'],
                  default='brief',
                  help='flash_as_attn_only: sensitivity run where rows with '
                  'flash/fused attention and recompute none use Calculon '
                  'attn_only (not storing the seq^2 scores)')
  ap.add_argument('--nomemcheck', nargs=3, metavar=('APP', 'EXE', 'SYS'))
  args = ap.parse_args()
  if args.nomemcheck:
    nomemcheck(*args.nomemcheck)
    return
  global INPUTS, OUT_CSV, VARIANT
  VARIANT = args.variant
  if VARIANT != 'brief':
    INPUTS = os.path.join(HERE, 'inputs_' + VARIANT)
    OUT_CSV = os.path.join(HERE, f'calculon_predictions_{VARIANT}.csv')

  with open(CORPUS) as f:
    rows = [r for r in json.load(f)['rows'] if selected(r)]
  os.makedirs(INPUTS, exist_ok=True)
  out = []
  for row in rows:
    rid = row['id']
    m = row_model(row)
    rec = dict(id=rid, calculon_step_time_s='', calculon_tokens_per_gpu_s='',
               measured_tokens_per_gpu_s=row['measured_tokens_per_gpu_s'],
               status='', note='')
    reason = why_not_expressible(row, m)
    if reason:
      rec.update(status='not expressible', note=reason)
      out.append(rec)
      continue
    app, exe, notes = build(row)
    d = os.path.join(INPUTS, rid)
    os.makedirs(d, exist_ok=True)
    app_path = os.path.join(d, 'model.json')
    exe_path = os.path.join(d, 'execution.json')
    with open(app_path, 'w') as f:
      json.dump(app, f, indent=2)
    with open(exe_path, 'w') as f:
      json.dump(exe, f, indent=2)
    sys_rel = SYSTEMS[row['device']]
    notes.insert(0, f'{family(row)}; system {os.path.basename(sys_rel)}')
    rec['note'] = '; '.join(notes)
    if args.no_run:
      out.append(rec)
      continue
    status, stats, msg = run_one(rid, app_path, exe_path,
                                 os.path.join(CALCULON, sys_rel))
    rec['status'] = status
    if status == 'oom' and stats:
      t = stats['total_time_nomemcheck']
      msg += (f" [= {row['gbs'] * row['seq'] / (t * row['gpus']):.5g} "
              'tokens/GPU/s]')
    if status == 'ok':
      t = stats['total_time']
      rec['calculon_step_time_s'] = f'{t:.6g}'
      rec['calculon_tokens_per_gpu_s'] = \
        f"{row['gbs'] * row['seq'] / (t * row['gpus']):.6g}"
    else:
      rec['note'] += '; ' + msg
    out.append(rec)

  cols = ['id', 'calculon_step_time_s', 'calculon_tokens_per_gpu_s',
          'measured_tokens_per_gpu_s', 'status', 'note']
  with open(OUT_CSV, 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=cols)
    w.writeheader()
    w.writerows(out)

  # summary: MAPE of tokens/GPU/s over ok rows, per source family
  fam = {r['id']: family(r) for r in rows}
  by = {}
  for rec in out:
    by.setdefault((fam[rec['id']], rec['status']), []).append(rec)
  for k in sorted(by):
    print(k, len(by[k]))
  for fm in ('SC21', 'DGXC'):
    ok = [r for r in out if fam[r['id']] == fm and r['status'] == 'ok']
    if not ok:
      print(fm, 'no ok rows')
      continue
    errs = [abs(float(r['calculon_tokens_per_gpu_s']) /
                float(r['measured_tokens_per_gpu_s']) - 1) for r in ok]
    signed = [float(r['calculon_tokens_per_gpu_s']) /
              float(r['measured_tokens_per_gpu_s']) - 1 for r in ok]
    print(f'{fm}: n={len(ok)} MAPE={100 * sum(errs) / len(errs):.1f}% '
          f'mean signed={100 * sum(signed) / len(signed):+.1f}% '
          f'max={100 * max(errs):.1f}%')


if __name__ == '__main__':
  main()
