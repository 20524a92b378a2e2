/**
 * The demo's progress on stderr: on a terminal one status line redrawn in place (a bar over the rounds,
 * the round, its updates so far, the last accuracy, the elapsed time); elsewhere (CI, a pipe, a file)
 * plain lines, one per published version and one every `plainEveryMs` while a round is running.
 * stdout stays free for the one summary line.
 */

export interface ProgressState {
  /** Rounds the pipeline will run. */
  rounds: number;
  /** The round being trained (1-based); 0 before the first starts. */
  round: number;
  /** Rounds closed so far. */
  closed: number;
  /** Updates published for the current round so far. */
  updates: number;
  /** Updates the round waits for (targetUpdates). */
  expected: number;
  /** Nodes that contributed to the last published version. */
  participants?: number;
  /** Held-out accuracy and loss of the last published version. */
  accuracy?: number;
  loss?: number;
  elapsedMs: number;
  phase: 'starting' | 'training' | 'ingesting' | 'report' | 'done';
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** A bar of `width` cells, `done` of `total` filled. */
export function progressBar(done: number, total: number, width = 20): string {
  const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const full = Math.floor(frac * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/** The status line of a terminal display (no newline), at most `columns` characters. */
export function formatProgress(s: ProgressState, columns = 100): string {
  const pct = s.rounds > 0 ? Math.round((100 * s.closed) / s.rounds) : 0;
  const parts = [`${progressBar(s.closed, s.rounds)} ${String(pct).padStart(3)}%`];
  switch (s.phase) {
    case 'starting':
      parts.push('starting');
      break;
    case 'training':
      parts.push(`round ${s.round}/${s.rounds}`, `updates ${s.updates}/${s.expected}`);
      break;
    case 'ingesting':
      parts.push('waiting for ClickHouse');
      break;
    case 'report':
      parts.push('building the report');
      break;
    case 'done':
      parts.push('done');
      break;
  }
  if (s.participants !== undefined) parts.push(`participants ${s.participants}`);
  parts.push(`accuracy ${s.accuracy === undefined ? '-' : s.accuracy.toFixed(4)}`);
  parts.push(seconds(s.elapsedMs));
  const line = parts.join('  ');
  return line.length <= columns ? line : line.slice(0, Math.max(0, columns - 1)) + '…';
}

/** The plain line written when a version is published. */
export function formatRoundLine(r: { round: number; rounds: number; version: number; accuracy?: number; loss?: number; participants: number; ms: number; elapsedMs: number }): string {
  const acc = r.accuracy === undefined ? 'n/a' : r.accuracy.toFixed(4);
  const loss = r.loss === undefined ? 'n/a' : r.loss.toFixed(4);
  return `round ${r.round}/${r.rounds} closed: version=${r.version} accuracy=${acc} loss=${loss} participants=${r.participants} round=${seconds(r.ms)} elapsed=${seconds(r.elapsedMs)}`;
}

/** The plain line written while a round runs. */
export function formatStatusLine(s: ProgressState): string {
  if (s.phase !== 'training') return `${s.phase === 'starting' ? 'starting' : s.phase === 'ingesting' ? 'waiting for ClickHouse to ingest the run' : s.phase === 'report' ? 'building the report' : 'done'}: elapsed=${seconds(s.elapsedMs)}`;
  return `round ${s.round}/${s.rounds} running: updates=${s.updates}/${s.expected} elapsed=${seconds(s.elapsedMs)}`;
}

export interface ProgressOptions {
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Redraw in place (default: the stream is a terminal). */
  tty?: boolean;
  /** Terminal redraw interval. Default 200 ms. */
  redrawMs?: number;
  /** Plain mode: a status line at most this often while nothing else is printed. Default 15 s. */
  plainEveryMs?: number;
  /** Nothing is written at all. */
  silent?: boolean;
  now?: () => number;
}

export class ProgressDisplay {
  private readonly state: ProgressState;
  private readonly tty: boolean;
  private readonly startedAt: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private lastPlain = 0;
  private drawn = false;

  constructor(private readonly o: ProgressOptions, initial: Pick<ProgressState, 'rounds' | 'expected'>) {
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    this.tty = o.tty ?? Boolean(o.stream.isTTY);
    this.state = { ...initial, round: 0, closed: 0, updates: 0, elapsedMs: 0, phase: 'starting' };
  }

  get mode(): 'tty' | 'plain' | 'silent' {
    return this.o.silent ? 'silent' : this.tty ? 'tty' : 'plain';
  }

  snapshot(): ProgressState {
    return { ...this.state, elapsedMs: this.now() - this.startedAt };
  }

  start(): void {
    if (this.o.silent) return;
    this.lastPlain = this.now();
    const every = this.tty ? (this.o.redrawMs ?? 200) : 1000;
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
    this.tick();
  }

  /** A round started (from the control topic) or an update of it was published. */
  roundStarted(round: number): void {
    if (round > this.state.round) {
      this.state.round = round;
      this.state.updates = 0;
      this.state.phase = 'training';
    }
  }

  updatePublished(round: number): void {
    this.roundStarted(round);
    if (round === this.state.round) this.state.updates++;
  }

  /** A version was published: round `round` closed. */
  versionPublished(v: { round: number; version: number; accuracy?: number; loss?: number; participants: number; ms: number }): void {
    this.state.closed = Math.max(this.state.closed, v.round);
    this.state.participants = v.participants;
    if (v.accuracy !== undefined) this.state.accuracy = v.accuracy;
    if (v.loss !== undefined) this.state.loss = v.loss;
    if (this.o.silent) return;
    const line = formatRoundLine({ ...v, rounds: this.state.rounds, elapsedMs: this.now() - this.startedAt });
    if (this.tty) {
      // Keep a line per round above the status line.
      this.o.stream.write(`\r\x1b[2K${line}\n`);
      this.drawn = false;
      this.tick();
    } else {
      this.o.stream.write(line + '\n');
      this.lastPlain = this.now();
    }
  }

  phase(phase: ProgressState['phase']): void {
    this.state.phase = phase;
    if (!this.tty && !this.o.silent && (phase === 'ingesting' || phase === 'report')) {
      this.o.stream.write(formatStatusLine(this.snapshot()) + '\n');
      this.lastPlain = this.now();
    }
    this.tick();
  }

  /** Stops redrawing and clears the status line. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty && this.drawn && !this.o.silent) this.o.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  private tick(): void {
    if (this.o.silent) return;
    const s = this.snapshot();
    if (this.tty) {
      // One column short of the width, so the cursor never wraps; a pseudo-terminal may report 0 columns.
      const columns = this.o.stream.columns || 100;
      this.o.stream.write(`\r\x1b[2K${formatProgress(s, Math.max(40, columns - 1))}`);
      this.drawn = true;
      return;
    }
    const every = this.o.plainEveryMs ?? 15_000;
    if (this.now() - this.lastPlain >= every) {
      this.o.stream.write(formatStatusLine(s) + '\n');
      this.lastPlain = this.now();
    }
  }
}
