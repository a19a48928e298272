// ONNX Runtime (npm onnxruntime-node, CPU) as a peer in `firesight bench --ort`: times one model
// on one input, or runs it on inputs firesight wrote, and prints one JSON object on stdout.
//   node ort_bench.js time MODEL THREADS INPUT.f32 RUNS WARMUP
//   node ort_bench.js run  MODEL THREADS INPUTS.f32
//   node ort_bench.js profile MODEL THREADS INPUT.f32 RUNS   (ONNX Runtime's own profiler: time per
//                                                          operator type, which kernels it fused into)
// INPUT.f32: raw float32 (little-endian), NCHW 3 x S x S images back to back. onnxruntime-node is
// found through NODE_PATH (bench/peers.sh installs it under build/ort-node).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

function images(path) {
  const bytes = fs.readFileSync(path);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

async function main() {
  const [mode, model, threads, inputPath, runsArg, warmupArg] = process.argv.slice(2);
  if (!['time', 'run', 'profile'].includes(mode) || !model || !threads || !inputPath) {
    throw new Error('usage: ort_bench.js time MODEL THREADS INPUT.f32 RUNS WARMUP | run MODEL THREADS INPUTS.f32 | profile MODEL THREADS INPUT.f32 RUNS');
  }
  const rssBefore = process.memoryUsage().rss / 1048576;
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableProfiling: mode === 'profile',
    profileFilePrefix: mode === 'profile' ? require('os').tmpdir() + '/ort-profile-' + process.pid : undefined,
  });
  const loadMs = ms(t0);
  const inputName = session.inputNames[0];
  const all = images(inputPath);
  const dims = session.inputMetadata && session.inputMetadata[0] && session.inputMetadata[0].shape;
  const per = dims && dims.length === 4 && dims.slice(1).every(Number.isInteger) ? dims[1] * dims[2] * dims[3] : all.length;
  const side = Math.round(Math.sqrt(per / 3));
  const feed = (i) => ({[inputName]: new ort.Tensor('float32', all.subarray(i * per, (i + 1) * per), [1, 3, side, side])});

  if (mode === 'run') {
    const outputs = [];
    for (let i = 0; i * per < all.length; ++i) {
      const r = await session.run(feed(i));
      outputs.push(session.outputNames.map((n) => Array.from(r[n].data)));
    }
    process.stdout.write(JSON.stringify({output_names: session.outputNames, outputs}) + '\n');
    return;
  }
  const x = feed(0);
  if (mode === 'profile') {
    for (let i = 0; i < 5; ++i) await session.run(x);  // warm-up, left out below
    const runs = Number(runsArg || 20);
    for (let i = 0; i < runs; ++i) await session.run(x);
    await session.endProfiling();
    // onnxruntime-node does not return the file's name: it is the prefix and a timestamp.
    const prefix = 'ort-profile-' + process.pid;
    const dir = require('os').tmpdir();
    const found = fs.readdirSync(dir).filter((f) => f.startsWith(prefix));
    if (found.length !== 1) throw new Error('profile file ' + prefix + '* not found in ' + dir);
    const file = dir + '/' + found[0];
    const events = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.unlinkSync(file);
    // Node events of the timed runs only: the warm-up's are the first 5 runs' worth.
    const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
    const perRun = nodes.length / (runs + 5);
    const timed = nodes.slice(Math.round(perRun * 5));
    const byOp = {};
    for (const e of timed) {
      const op = e.args && e.args.op_name ? e.args.op_name : e.name;
      byOp[op] = byOp[op] || {count: 0, ms: 0};
      byOp[op].count += 1 / runs;
      byOp[op].ms += e.dur / 1000 / runs;
    }
    const total = Object.values(byOp).reduce((a, b) => a + b.ms, 0);
    process.stdout.write(JSON.stringify({runs, nodes_per_run: perRun, kernel_ms_per_run: total, by_op: byOp}) + '\n');
    return;
  }
  const t1 = process.hrtime.bigint();
  await session.run(x);
  const firstMs = ms(t1);
  for (let i = 0; i < Number(warmupArg || 0); ++i) await session.run(x);
  const samples = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < Number(runsArg || 1); ++i) {
    const t = process.hrtime.bigint();
    await session.run(x);
    samples.push(ms(t));
  }
  process.stdout.write(JSON.stringify({
    samples,
    load_ms: loadMs,
    first_run_ms: firstMs,
    total_ms: ms(start),
    rss_before_mb: rssBefore,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    version: ort.env.versions ? ort.env.versions.node : undefined,
  }) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({error: String(e && e.message ? e.message : e)}) + '\n');
  process.exit(1);
});
