import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { buildFromDirectory } from '../../build/from-directory.js';
import { UserError } from '../../errors.js';
import type { ConfigChanges, MediaTypeFlavour } from '../../oci/image.js';
import { hostPlatform, parsePlatformList } from '../../oci/platform.js';
import { pullBaseImage } from '../../registry/pull.js';
import { addOutputOptions, collect, openImageRun, type CommonOptions } from '../run.js';

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
  const platforms = options.platform ? parsePlatformList(options.platform) : [hostPlatform()];
  const changes: ConfigChanges = {
    Entrypoint: parseCommandLine('--entrypoint', options.entrypoint),
    Cmd: parseCommandLine('--cmd', options.cmd),
    Env: options.env.length ? Object.entries(parseKeyValues('--env', options.env)).map(([key, value]) => `${key}=${value}`) : undefined,
    Labels: options.label.length ? parseKeyValues('--label', options.label) : undefined,
    ExposedPorts: parsePorts(options.expose),
    User: options.user,
    WorkingDir: options.workdir,
  };
  const run = await openImageRun(options);
  const base = options.base;
  const artifact = await buildFromDirectory({
    directory: dir,
    prefix: options.prefix,
    platforms,
    store: run.store,
    changes,
    flavour: options.mediaTypes,
    annotations: { source: options.source, revision: options.revision },
    resolveBase: base
      ? async (platform) => {
          const pulled = await pullBaseImage(base, platform, run.store, { client: run.client, progress: run.progress });
          return { name: base, digest: pulled.manifestDigest, config: pulled.config, layers: pulled.layers };
        }
      : undefined,
  });
  await run.emit(artifact);
}

export function buildFromDirCommandDefinition(): Command {
  return addOutputOptions(
    new Command('build-from-dir')
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
}
