/**
 * What planning reads, for real: the python-build-standalone table, the host's bytecode
 * interpreter, the Debian index or lock, a pulled base's documents and glibc. Beside them, the
 * bytecode compilers a plan names, opened once and handed to execution, so the interpreter found
 * while planning is the one that compiles.
 */
import { availableParallelism } from 'node:os';
import { createGunzip } from 'node:zlib';
import { UserError } from '../errors.js';
import { resolveBasePackages, type BytecodeInterpreter } from '../base/build.js';
import type { Layer } from '../oci/image.js';
import { formatPlatform } from '../oci/platform.js';
import type { BlobSource } from '../oci/sink.js';
import type { BlobStore } from '../oci/store.js';
import { readTar } from '../oci/tar-reader.js';
import type { Progress } from '../progress.js';
import type { HostPycCompiler } from '../python/bytecode.js';
import { checkLockWithUv, checkRequiredUv, requiresUvVersion, uvVersion } from '../python/lock-check.js';
import { loadStandaloneDownloads, standaloneUrl } from '../runtime/standalone.js';
import { locateUv } from '../python/uv.js';
import { openBytecodeCompiler } from '../python/venv-layers.js';
import type { RegistryClient } from '../registry/client.js';
import { pullBaseImage } from '../registry/pull.js';
import type { PlanSources, PulledBase } from './plan.js';

export interface PipelineContext {
  store: BlobStore;
  client: RegistryClient;
  blobs: BlobSource;
  progress: Progress;
  env: NodeJS.ProcessEnv;
}

/**
 * The bytecode compilers of a build, one per interpreter, opened with a worker per core when
 * planning finds the interpreter and closed when the build ends.
 */
export class BytecodeCompilers {
  private readonly open = new Map<string, HostPycCompiler>();

  constructor(private readonly context: Pick<PipelineContext, 'store' | 'env' | 'progress'>, private readonly workers = availableParallelism()) {}

  /** The host CPython for a minor version (remembered in the store), or undefined with a warning. */
  async find(minor: string): Promise<BytecodeInterpreter | undefined> {
    const compiler = await openBytecodeCompiler(minor, {
      env: this.context.env,
      store: this.context.store,
      workers: this.workers,
      warn: (line) => this.context.progress.info(`warning: ${line}`),
    });
    if (!compiler) return undefined;
    this.open.set(compiler.interpreter, compiler);
    return { interpreter: compiler.interpreter, version: compiler.version, cacheTag: compiler.cacheTag };
  }

  /** The compiler of a planned interpreter, which must still be what the plan says it is. */
  async get(planned: BytecodeInterpreter): Promise<HostPycCompiler> {
    let compiler = this.open.get(planned.interpreter);
    if (!compiler) {
      compiler = await openBytecodeCompiler(planned.version, { interpreter: planned.interpreter, env: this.context.env, workers: this.workers, warn: () => {} });
      if (compiler) this.open.set(compiler.interpreter, compiler);
    }
    if (!compiler || compiler.version !== planned.version || compiler.cacheTag !== planned.cacheTag) {
      throw new UserError(`the plan compiles bytecode with ${planned.interpreter} (CPython ${planned.version}), which ${compiler ? `is now CPython ${compiler.version}` : 'no longer runs'}; plan again`);
    }
    return compiler;
  }

  async close(): Promise<void> {
    await Promise.all([...this.open.values()].map((compiler) => compiler.close()));
    this.open.clear();
  }
}

/** The sources planning reads from: the network and the store, through uvimage's verified clients. */
export function defaultPlanSources(context: PipelineContext, compilers: BytecodeCompilers): PlanSources {
  const { store, env, progress } = context;
  return {
    standaloneDownloads: () => loadStandaloneDownloads(env),
    standaloneUrl: (download) => standaloneUrl(download, env),
    bytecodeInterpreter: (minor) => compilers.find(minor),
    debianBasePackages: (request) => resolveBasePackages({ ...request, store, progress, env }),
    pulledBase: async (reference, platform) => {
      const pulled = await pullBaseImage(reference, platform, store, { client: context.client, progress });
      return { manifestDigest: pulled.manifestDigest, platform: pulled.platform, config: pulled.config, layers: pulled.layers };
    },
    pulledBaseGlibc: (base, reference) => glibcOfBase(base, store, context.blobs, reference),
    checkLock: async (locked, options) => {
      const uv = await locateUv({ env, store, progress });
      if (!options.frozen) return checkLockWithUv(locked.root, locked.members, { env, uv, python: options.python, store });
      // Frozen: the lock is taken as it is, but the uv the project asks for still has to be the one that builds it.
      if (await requiresUvVersion(locked.root)) await checkRequiredUv(locked.root, await uvVersion(env, uv), uv);
    },
  };
}

/**
 * The glibc of a pulled base, which caps the manylinux tags: from the dpkg database in its
 * layers (distroless' status.d or a full /var/lib/dpkg/status), read as streams. That means
 * fetching the base's layers, so the answer is remembered per base image, and `base-glibc` in
 * [tool.uvimage] skips the look altogether (a push then never downloads the base's layers).
 */
async function glibcOfBase(base: PulledBase, store: BlobStore, blobs: BlobSource, name: string): Promise<[number, number]> {
  const key = `${base.manifestDigest} ${formatPlatform(base.platform)}`;
  return store.cached('base-glibc', key, () => readGlibcOfLayers(base.layers, blobs, name), {
    valid: (record) => Array.isArray(record) && record.length === 2 && record.every(Number.isInteger),
  });
}

async function readGlibcOfLayers(layers: Layer[], blobs: BlobSource, name: string): Promise<[number, number]> {
  for (const layer of [...layers].reverse()) {
    const stream = (await blobs.openLayer(layer)).pipe(createGunzip());
    for await (const member of readTar(stream, {
      what: `${name} layer ${layer.descriptor.digest}`,
      collect: (entry) => /^(\.\/)?var\/lib\/dpkg\/(status|status\.d\/libc6[^/]*)$/.test(entry.name),
    })) {
      if (!member.content) continue;
      const stanza = member.content.toString('utf8').split('\n\n').find((text) => /^Package: libc6$/m.test(text));
      const version = stanza && /^Version: (?:\d+:)?(\d+)\.(\d+)/m.exec(stanza);
      if (version) return [Number(version[1]), Number(version[2])];
    }
  }
  throw new UserError(
    `cannot tell which glibc the base ${name} has (no libc6 in its dpkg database); set tool.uvimage.base-glibc (e.g. "2.36"), which caps the manylinux wheels chosen`,
  );
}
