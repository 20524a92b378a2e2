import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatProgress, formatRoundLine, formatStatusLine, progressBar, ProgressDisplay, type ProgressState } from '../../src/demo/progress.ts';

const state = (over: Partial<ProgressState> = {}): ProgressState => ({
  rounds: 10, round: 4, closed: 3, updates: 7, expected: 10, participants: 10, accuracy: 0.81234, loss: 0.6, elapsedMs: 42_345, phase: 'training', ...over,
});

class Sink extends Writable {
  chunks: string[] = [];
  isTTY?: boolean;
  columns = 120;
  override write(s: unknown): boolean {
    this.chunks.push(String(s));
    return true;
  }
  get text(): string {
    return this.chunks.join('');
  }
}

describe('progress formatting', () => {
  it('draws a bar over the rounds', () => {
    expect(progressBar(0, 10, 10)).toBe('[..........]');
    expect(progressBar(3, 10, 10)).toBe('[###.......]');
    expect(progressBar(10, 10, 10)).toBe('[##########]');
    expect(progressBar(12, 10, 4)).toBe('[####]');
    expect(progressBar(1, 0, 4)).toBe('[....]');
  });

  it('shows round, updates, participants, last accuracy and elapsed time on one line', () => {
    expect(formatProgress(state())).toBe('[######..............]  30%  round 4/10  updates 7/10  participants 10  accuracy 0.8123  42.3s');
    expect(formatProgress(state({ phase: 'starting', round: 0, closed: 0, participants: undefined, accuracy: undefined, elapsedMs: 900 }))).toBe('[....................]   0%  starting  accuracy -  0.9s');
    expect(formatProgress(state({ phase: 'ingesting', closed: 10 }))).toContain('100%  waiting for ClickHouse');
    expect(formatProgress(state(), 30)).toHaveLength(30);
  });

  it('writes a plain line per closed round and a status line while one runs', () => {
    expect(formatRoundLine({ round: 3, rounds: 10, version: 3, accuracy: 0.8, loss: 0.51234, participants: 9, ms: 6_100, elapsedMs: 20_000 }))
      .toBe('round 3/10 closed: version=3 accuracy=0.8000 loss=0.5123 participants=9 round=6.1s elapsed=20.0s');
    expect(formatRoundLine({ round: 1, rounds: 2, version: 1, participants: 2, ms: 1, elapsedMs: 1 })).toContain('accuracy=n/a loss=n/a');
    expect(formatStatusLine(state())).toBe('round 4/10 running: updates=7/10 elapsed=42.3s');
    expect(formatStatusLine(state({ phase: 'report' }))).toBe('building the report: elapsed=42.3s');
  });
});

describe('ProgressDisplay', () => {
  it('redraws one line in place on a terminal and keeps a line per round above it', () => {
    const out = new Sink();
    out.isTTY = true;
    let now = 0;
    const d = new ProgressDisplay({ stream: out, now: () => now }, { rounds: 2, expected: 3 });
    expect(d.mode).toBe('tty');
    d.start();
    d.roundStarted(1);
    d.updatePublished(1);
    now = 1_500;
    d.versionPublished({ round: 1, version: 1, accuracy: 0.5, loss: 1, participants: 3, ms: 1_400 });
    d.stop();
    const text = out.text;
    expect(text.startsWith('\r\x1b[2K[....................]')).toBe(true);
    expect(text).toContain('\r\x1b[2Kround 1/2 closed: version=1 accuracy=0.5000 loss=1.0000 participants=3 round=1.4s elapsed=1.5s\n');
    expect(text).toContain('[##########..........]  50%');
    expect(text.endsWith('\r\x1b[2K')).toBe(true);
    expect(d.snapshot()).toMatchObject({ round: 1, closed: 1, updates: 1, accuracy: 0.5, participants: 3 });
  });

  it('writes plain lines, never control characters, when stderr is not a terminal', () => {
    const out = new Sink();
    let now = 0;
    const d = new ProgressDisplay({ stream: out, now: () => now, plainEveryMs: 10_000 }, { rounds: 3, expected: 2 });
    expect(d.mode).toBe('plain');
    d.start();
    d.updatePublished(1);
    d.updatePublished(1);
    expect(d.snapshot()).toMatchObject({ round: 1, updates: 2, phase: 'training' });
    now = 2_000;
    d.versionPublished({ round: 1, version: 1, accuracy: 0.7, loss: 0.9, participants: 2, ms: 2_000 });
    d.phase('ingesting');
    d.stop();
    expect(out.text.includes('\x1b') || out.text.includes('\r')).toBe(false);
    expect(out.text.split('\n').filter(Boolean)).toEqual([
      'round 1/3 closed: version=1 accuracy=0.7000 loss=0.9000 participants=2 round=2.0s elapsed=2.0s',
      'waiting for ClickHouse to ingest the run: elapsed=2.0s',
    ]);
  });

  it('is silent when asked', () => {
    const out = new Sink();
    out.isTTY = true;
    const d = new ProgressDisplay({ stream: out, silent: true }, { rounds: 1, expected: 1 });
    d.start();
    d.versionPublished({ round: 1, version: 1, participants: 1, ms: 1 });
    d.stop();
    expect(out.chunks).toEqual([]);
    expect(d.mode).toBe('silent');
  });
});
