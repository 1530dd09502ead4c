#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { buildFromDirectory } from '../build/from-directory.js';
import { UserError, describeError } from '../errors.js';
import type { Artifact, ConfigChanges, MediaTypeFlavour } from '../oci/image.js';
import { hostPlatform, parsePlatformList, type Platform } from '../oci/platform.js';
import type { Sink, SinkResult } from '../oci/sink.js';
import { BlobStore, defaultCacheDir } from '../oci/store.js';
import { createBlobSource } from '../oci/blobs.js';
import { createProgress, type Progress } from './progress.js';
import { describeBuild, summarizeBuild } from './output.js';
import { openSinks, registryOptionsFrom, type OutputOptions } from './sinks.js';
import { RegistryClient } from '../registry/client.js';
import { pullBaseImage, fetchLayerBlob } from '../registry/pull.js';

/** Options every building command shares: where the result goes, and how the run talks. */
interface CommonOptions extends OutputOptions {
  cacheDir?: string;
  json?: boolean;
  debug?: boolean;
}

interface BuildFromDirOptions extends CommonOptions {
  platform?: string;
  base?: string;
  prefix: string;
  entrypoint?: string;
  cmd?: string;
  env: string[];
  label: string[];
  expose: string[];
  user?: string;
  workdir?: string;
  source?: string;
  revision?: string;
  mediaTypes: MediaTypeFlavour;
}

const collect = (value: string, previous: string[]) => [...previous, value];

function addOutputOptions(command: Command): Command {
  return command
    .option('-t, --tag <ref>', 'name and tag, e.g. registry.example.com/me/app:1.0 (repeatable)', collect, [])
    .option('--push', 'push to the registry named by each tag')
    .option('--load', 'load into the running Docker engine (DOCKER_HOST honoured)')
    .option('--oci <dir>', 'write an OCI image layout directory')
    .option('--tar <file>', 'write a docker-archive tarball (docker load / podman load)')
    .option('--load-platform <os/arch>', 'platform to take from a multi-platform build for --load and --tar (default: this host)')
    .option('--insecure-registry <host>', 'allow plain http to this registry (localhost and 127.0.0.1 always are)', collect, [])
    .option('--registry-username <name>', 'username for the registries of the tags (or UVIMAGE_REGISTRY_USERNAME)')
    .option('--registry-password-stdin', 'read the registry password from standard input (or UVIMAGE_REGISTRY_PASSWORD)')
    .option('--cache-dir <dir>', `blob cache (default: $UVIMAGE_CACHE_DIR, else $XDG_CACHE_HOME/uvimage; now ${defaultCacheDir()})`)
    .option('--json', 'print the result as JSON on stdout')
    .option('--debug', 'print stack traces for errors');
}

/** Parses `["a","b"]` as a JSON array, anything else as one word. */
function parseCommandLine(flag: string, text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  if (text.trim().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UserError(`${flag}: ${JSON.stringify(text)} looks like a JSON array but is not valid JSON`);
    }
    if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) {
      throw new UserError(`${flag}: expected a JSON array of strings`);
    }
    return parsed;
  }
  return [text];
}

function parseKeyValues(flag: string, values: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const value of values) {
    const at = value.indexOf('=');
    if (at <= 0) throw new UserError(`${flag}: expected KEY=VALUE, got ${JSON.stringify(value)}`);
    result[value.slice(0, at)] = value.slice(at + 1);
  }
  return result;
}

function parsePorts(values: string[]): Record<string, Record<string, never>> | undefined {
  if (values.length === 0) return undefined;
  const ports: Record<string, Record<string, never>> = {};
  for (const value of values) {
    const match = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(value);
    if (!match || Number(match[1]) > 65535) throw new UserError(`--expose: ${JSON.stringify(value)} is not PORT or PORT/tcp|udp|sctp`);
    ports[`${match[1]}/${match[2] ?? 'tcp'}`] = {};
  }
  return ports;
}

async function buildFromDirCommand(directory: string, options: BuildFromDirOptions): Promise<void> {
  const dir = resolve(directory);
  const stats = await stat(dir).catch(() => undefined);
  if (!stats?.isDirectory()) throw new UserError(`${directory}: not a directory`);
  const platforms: Platform[] = options.platform ? parsePlatformList(options.platform) : [hostPlatform()];
  const progress = createProgress({ quiet: options.json });
  const store = await BlobStore.open(options.cacheDir ?? defaultCacheDir());
  const registry = await registryOptionsFrom(options);
  // One client for pulling the base, fetching its layers and pushing, so tokens are reused.
  const client = new RegistryClient(registry);
  const sinks = openSinks(options, client, store);
  const changes: ConfigChanges = {
    Entrypoint: parseCommandLine('--entrypoint', options.entrypoint),
    Cmd: parseCommandLine('--cmd', options.cmd),
    Env: options.env.length ? Object.entries(parseKeyValues('--env', options.env)).map(([k, v]) => `${k}=${v}`) : undefined,
    Labels: options.label.length ? parseKeyValues('--label', options.label) : undefined,
    ExposedPorts: parsePorts(options.expose),
    User: options.user,
    WorkingDir: options.workdir,
  };
  const base = options.base;
  const artifact = await buildFromDirectory({
    directory: dir,
    prefix: options.prefix,
    platforms,
    store,
    changes,
    flavour: options.mediaTypes,
    annotations: { source: options.source, revision: options.revision },
    resolveBase: base
      ? async (platform) => {
          const pulled = await pullBaseImage(base, platform, store, { client, progress });
          return { name: base, digest: pulled.manifestDigest, config: pulled.config, layers: pulled.layers };
        }
      : undefined,
  });
  const blobs = createBlobSource(store, (layer) => fetchLayerBlob(layer, store, { client, progress }));
  const results = await publish(artifact, sinks, { blobs, progress, tags: options.tag });
  report(artifact, results, options.json);
}

/** Runs every sink; all run even if one fails, and the first failure is reported. */
async function publish(artifact: Artifact, sinks: Sink[], context: { blobs: ReturnType<typeof createBlobSource>; progress: Progress; tags: string[] }) {
  const settled = await Promise.allSettled(sinks.map((sink) => sink.write(artifact, context)));
  const failure = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failure) throw failure.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<SinkResult>).value);
}

function report(artifact: Artifact, results: SinkResult[], json: boolean | undefined): void {
  if (json) process.stdout.write(`${JSON.stringify(describeBuild(artifact, results), null, 2)}\n`);
  else process.stdout.write(`${summarizeBuild(artifact, results)}\n`);
}

export function createProgram(): Command {
  const program = new Command('uvimage')
    .description('Build minimal, distroless, reproducible OCI images from uv projects, without a Docker daemon')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text.startsWith('error:') ? `uvimage: ${text}` : text) });

  addOutputOptions(
    program
      .command('build-from-dir')
      .description('build an image whose layer is a directory of files (on a base image, or from scratch)')
      .argument('<dir>', 'directory whose contents become the layer')
      .option('--platform <list>', 'target platforms, comma separated (default: this host)')
      .option('--base <ref>', 'base image from any registry, by tag or digest (default: none, from scratch)')
      .option('--prefix <path>', 'where the directory goes in the image', '/')
      .option('--entrypoint <cmd>', 'entrypoint: a JSON array of strings, or one word')
      .option('--cmd <cmd>', 'command: a JSON array of strings, or one word')
      .option('--env <KEY=VALUE>', 'environment variable (repeatable)', collect, [])
      .option('--label <KEY=VALUE>', 'label (repeatable)', collect, [])
      .option('--expose <port>', 'exposed port, e.g. 8000 or 53/udp (repeatable)', collect, [])
      .option('--user <user>', 'user to run as, e.g. 65532 or 65532:65532')
      .option('--workdir <path>', 'working directory')
      .option('--source <url>', 'org.opencontainers.image.source annotation')
      .option('--revision <rev>', 'org.opencontainers.image.revision annotation')
      .addOption(new Option('--media-types <kind>', 'OCI or Docker v2 media types').choices(['oci', 'docker']).default('oci')),
  ).action(buildFromDirCommand);
  return program;
}

/** Maps failures to exit codes in one place: 1 for what the user can fix, 2 for a bug. */
export async function main(argv: string[]): Promise<number> {
  const program = createProgram();
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are successes; everything else commander reports is a usage error.
      return error.exitCode === 0 ? 0 : 1;
    }
    if (error instanceof UserError) {
      process.stderr.write(`uvimage: error: ${error.message}\n`);
      if (debug && error.stack) process.stderr.write(`${error.stack}\n`);
      return 1;
    }
    process.stderr.write(`uvimage: internal error: ${describeError(error)}\n`);
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    else process.stderr.write('(this is a bug in uvimage; run with --debug for the stack trace)\n');
    return 2;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}

