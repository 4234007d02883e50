import WebSocket from 'ws';

/** A small Chrome DevTools Protocol client for a Node process started with --inspect. */
export class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private readonly listeners = new Map<string, (params: unknown) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: WebSocket.RawData) => {
      const message = JSON.parse(data.toString()) as { id?: number; method?: string; params?: unknown; result?: unknown; error?: { message: string } };
      if (message.id === undefined) {
        if (message.method) this.listeners.get(message.method)?.(message.params);
        return;
      }
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.error) waiter.reject(new Error(message.error.message));
      else waiter.resolve(message.result);
    });
  }

  static async attach(port: number): Promise<Inspector> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
        const target = list[0];
        if (!target) throw new Error('no inspector target');
        const ws = new WebSocket(target.webSocketDebuggerUrl, { perMessageDeflate: false, maxPayload: 1024 * 1024 * 1024 });
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        return new Inspector(ws);
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  send<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: (value) => resolve(value as T), reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Full GC, then process.memoryUsage() inside the target. */
  async memoryAfterGc(): Promise<{ rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number }> {
    await this.send('HeapProfiler.enable');
    await this.send('HeapProfiler.collectGarbage');
    await this.send('HeapProfiler.collectGarbage');
    const result = await this.send<{ result: { value: string } }>('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    });
    return JSON.parse(result.result.value) as { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
  }

  /**
   * A heap snapshot of the target (after its own full GC), summarised: self size and count per
   * kind of node — an object by its constructor, a closure by its function's source location.
   */
  async heapSummary(): Promise<HeapSummary> {
    const scripts = new Map<string, string>();
    this.listeners.set('Debugger.scriptParsed', (params) => {
      const { scriptId, url } = params as { scriptId: string; url: string };
      scripts.set(scriptId, url);
    });
    await this.send('Debugger.enable');
    await this.send('Debugger.disable');
    this.listeners.delete('Debugger.scriptParsed');
    const chunks: string[] = [];
    this.listeners.set('HeapProfiler.addHeapSnapshotChunk', (params) => chunks.push((params as { chunk: string }).chunk));
    await this.send('HeapProfiler.enable');
    await this.send('HeapProfiler.collectGarbage');
    await this.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false, captureNumericValue: false });
    this.listeners.delete('HeapProfiler.addHeapSnapshotChunk');
    return summariseHeap(JSON.parse(chunks.join('')) as HeapSnapshot, scripts);
  }

  close(): void {
    this.ws.close();
  }
}

interface HeapSnapshot {
  snapshot: {
    meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]]; location_fields?: string[] };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
  locations?: number[];
}

/** Self bytes and count per kind of heap node. */
export type HeapSummary = Map<string, { size: number; count: number }>;

/**
 * An object is named by its constructor, a closure by its source location; anything without a
 * name of its own (property and element stores, contexts, strings, numbers) by its first
 * retainer and the edge from it, e.g. `(string) ← Object.nicknameMask`.
 */
function summariseHeap(heap: HeapSnapshot, scripts: Map<string, string>): HeapSummary {
  const { node_fields: fields, node_types: [typeNames], edge_fields: edgeFields, edge_types: [edgeTypes], location_fields: locationFields = [] } = heap.snapshot.meta;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt, edgeCountAt] = ['type', 'name', 'self_size', 'edge_count'].map((field) => fields.indexOf(field)) as [number, number, number, number];
  const where = new Map<number, string>();
  const locations = heap.locations ?? [];
  const lw = locationFields.length;
  if (lw) {
    const [objectAt, scriptAt, lineAt, columnAt] = ['object_index', 'script_id', 'line', 'column'].map((field) => locationFields.indexOf(field)) as [number, number, number, number];
    for (let i = 0; i < locations.length; i += lw) {
      const url = scripts.get(String(locations[i + scriptAt])) ?? `script ${locations[i + scriptAt]}`;
      where.set(locations[i + objectAt]!, `${url.replace(/^.*\/(node_modules\/\.pnpm\/[^/]+\/node_modules\/|(apps|packages)\/)/, '')}:${locations[i + lineAt]! + 1}:${locations[i + columnAt]! + 1}`);
    }
  }
  const own = (i: number): string | null => {
    const type = typeNames[heap.nodes[i + typeAt]!]!;
    const name = heap.strings[heap.nodes[i + nameAt]!]!;
    if (type === 'closure') return `closure ${name || '(anonymous)'} ${where.get(i) ?? ''}`;
    if ((type === 'object' || type === 'native') && !name.startsWith('system /') && name !== 'Object' && name !== 'Array') return name;
    return null;
  };
  const generic = (i: number): string => {
    const type = typeNames[heap.nodes[i + typeAt]!]!;
    const name = heap.strings[heap.nodes[i + nameAt]!]!;
    return type === 'object' || type === 'native' || type === 'hidden' || type === 'array' || type === 'object shape' ? `(${type}) ${name.slice(0, 40)}` : `(${type})`;
  };
  // The first retainer of every node, with the edge's name.
  const ew = edgeFields.length;
  const [edgeTypeAt, edgeNameAt, toAt] = ['type', 'name_or_index', 'to_node'].map((field) => edgeFields.indexOf(field)) as [number, number, number];
  const retainer = new Map<number, string>();
  for (let i = 0, e = 0; i < heap.nodes.length; i += width) {
    const count = heap.nodes[i + edgeCountAt]!;
    let label: string | undefined;
    for (let k = 0; k < count; k++, e += ew) {
      const to = heap.edges[e + toAt]!;
      if (retainer.has(to)) continue;
      const edgeType = edgeTypes[heap.edges[e + edgeTypeAt]!]!;
      if (edgeType === 'weak') continue;
      label ??= own(i) ?? generic(i);
      const edgeName = edgeType === 'element' || edgeType === 'hidden' ? `[${heap.edges[e + edgeNameAt]}]` : heap.strings[heap.edges[e + edgeNameAt]!];
      retainer.set(to, `${label}.${edgeName}`);
    }
  }
  const summary: HeapSummary = new Map();
  for (let i = 0; i < heap.nodes.length; i += width) {
    const key = own(i) ?? `${generic(i)} ← ${retainer.get(i) ?? '?'}`;
    const entry = summary.get(key);
    const size = heap.nodes[i + sizeAt]!;
    if (entry) {
      entry.size += size;
      entry.count += 1;
    } else summary.set(key, { size, count: 1 });
  }
  return summary;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  top: { name: string; where: string; selfPct: number }[];
  byArea: { area: string; selfPct: number }[];
}

function area(url: string, functionName: string): string {
  if (!url) {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle)
    return 'native/builtin';
  }
  const pnpm = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pnpm?.[1]) return pnpm[1];
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const app = /\/(apps|packages)\/([^/]+)\//.exec(url);
  if (app) return `@chat/${app[2]}`;
  return url.split('/').slice(-2).join('/');
}

/** Self time per function and per package, from hit counts. */
export function summariseProfile(profile: CpuProfile, topN = 15): ProfileSummary {
  const total = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0) || 1;
  const byFunction = new Map<string, { name: string; where: string; hits: number }>();
  const byArea = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (!hits) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || '(anonymous)';
    const where = url ? `${area(url, name)} ${url.split('/').pop()}:${lineNumber + 1}` : '';
    const key = `${name}|${where}`;
    const entry = byFunction.get(key) ?? { name, where, hits: 0 };
    entry.hits += hits;
    byFunction.set(key, entry);
    const a = area(url, name);
    byArea.set(a, (byArea.get(a) ?? 0) + hits);
  }
  return {
    totalMs: (profile.endTime - profile.startTime) / 1000,
    top: [...byFunction.values()]
      .sort((a, b) => b.hits - a.hits)
      .slice(0, topN)
      .map((e) => ({ name: e.name, where: e.where, selfPct: (100 * e.hits) / total })),
    byArea: [...byArea.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([a, hits]) => ({ area: a, selfPct: (100 * hits) / total })),
  };
}
