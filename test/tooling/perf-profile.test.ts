import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attribute, bundleModuleMap, moduleName, parsePerfScript } from '../bench/lib/perf-profile.ts';

/** `perf script -F ip,sym,dso` as it prints a gateway's samples (shortened). */
const SCRIPT = `
	    7fecd01fd544 JS:*writeFreshBatch file:///srv/chat/packages/db/src/repositories/messages.repository.ts:55:1089 (/tmp/perf-1.map)
	         1508083 Builtins_AsyncFunctionAwaitResolveClosure (/usr/bin/node)

	    ffffffff81000001 _raw_spin_unlock_irqrestore ([kernel.kallsyms])
	    7fecd01fd600 JS:*nextWrite file:///srv/chat/node_modules/.pnpm/postgres@3.4.9_patch_hash=ab/node_modules/postgres/src/connection.js:254:21 (/tmp/perf-1.map)
	    7fecd01fd700 JS:*flush file:///srv/chat/apps/gateway/src/infrastructure/message-writer.ts:1:2745 (/tmp/perf-1.map)

	    1125ed2 v8::internal::JsonStringifier::SerializeString (/usr/bin/node)
	    7fecd01fd800 JS:*get length file:///srv/chat/dist/gateway.mjs:12:3 (/tmp/perf-1.map)

	    7fecd01fd900 JS:*processTicksAndRejections node:internal/process/task_queues:67:35 (/tmp/perf-1.map)

	    ffffffff81000002 finish_task_switch.isra.0 ([kernel.kallsyms])
	    ffffffff81000003 schedule ([kernel.kallsyms])

	    c4993d v8::internal::Scavenger::ScavengeObject (/usr/bin/node)

	    c4993e v8::internal::compiler::PipelineImpl::OptimizeGraph (/usr/bin/node)
	    c4993f v8::internal::OptimizingCompileDispatcher::CompileTask::RunInternal (/usr/bin/node)
`;

describe('perf profiles by module and by function', () => {
  const dir = mkdtempSync(join(tmpdir(), 'perf-profile-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names a module by its package, or by its path in the repository', () => {
    expect(moduleName('/srv/chat/node_modules/.pnpm/postgres@3.4.9_patch_hash=ab/node_modules/postgres/src/connection.js')).toBe('postgres/src/connection.js');
    expect(moduleName('node_modules/.pnpm/@socket.io+redis-adapter@8.3.0/node_modules/@socket.io/redis-adapter/dist/util.js')).toBe('@socket.io/redis-adapter/dist/util.js');
    expect(moduleName('/srv/chat/apps/gateway/src/services/message.service.ts')).toBe('apps/gateway/src/services/message.service.ts');
  });

  it("gives each sample to the JavaScript nearest its leaf, else to what its leaf is, and bundle lines to esbuild's modules", () => {
    const bundle = join(dir, 'gateway.mjs');
    writeFileSync(bundle, ['import x from "y";', '// node_modules/.pnpm/ws@8.23.0/node_modules/ws/lib/sender.js', 'var a = 1;', ...Array(8).fill(''), '// apps/gateway/src/lib/deadline.ts', 'function f() {}', ''].join('\n'));
    const stacks = parsePerfScript(SCRIPT);
    expect(stacks).toHaveLength(7);
    expect(Object.fromEntries(attribute(stacks, bundleModuleMap(bundle)))).toEqual({
      'packages/db/src/repositories/messages.repository.ts': 1,
      // The kernel's wake-up of the reader is the write's, and the write is postgres.js's.
      'postgres/src/connection.js': 1,
      // Line 12 of the bundle is in the module whose comment opens at line 12.
      'apps/gateway/src/lib/deadline.ts': 1,
      'node:internal/process/task_queues': 1,
      kernel: 1,
      'garbage collector': 1,
      'JIT compiler': 1,
    });
    expect(Object.fromEntries(attribute(stacks, bundleModuleMap(bundle), 'function'))).toEqual({
      'writeFreshBatch @ packages/db/src/repositories/messages.repository.ts': 1,
      'nextWrite @ postgres/src/connection.js': 1,
      // A name with a space in it (a getter) is kept whole.
      'get length @ apps/gateway/src/lib/deadline.ts': 1,
      'processTicksAndRejections @ node:internal/process/task_queues': 1,
      kernel: 1,
      'garbage collector': 1,
      'JIT compiler': 1,
    });
    expect(bundleModuleMap(bundle)(3)).toBe('node_modules/.pnpm/ws@8.23.0/node_modules/ws/lib/sender.js');
    expect(bundleModuleMap(bundle)(1)).toBe('(bundle prologue)');
  });
});
