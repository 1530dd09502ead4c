import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { buildFromDirectory } from '../../pipeline/from-directory.js';
import { parseCommandLine, parseKeyValues, parsePorts } from '../../config/values.js';
import { UserError } from '../../errors.js';
import type { ConfigChanges } from '../../oci/image.js';
import { hostPlatform, parsePlatformList } from '../../oci/platform.js';
import { pullBaseImage } from '../../registry/pull.js';
import { addImageConfigOptions, type ImageConfigFlags } from '../parse.js';
import { addOutputOptions, openImageRun, type CommonOptions } from '../run.js';

interface BuildFromDirOptions extends CommonOptions, ImageConfigFlags {
  platform?: string;
  base?: string;
  prefix: string;
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
  const run = await openImageRun(options, { platforms });
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
  const command = new Command('build-from-dir')
    .description('build an image whose layer is a directory of files (on a base image, or from scratch)')
    .argument('<dir>', 'directory whose contents become the layer')
    .option('--platform <list>', 'target platforms, comma separated (default: this host)')
    .option('--base <ref>', 'base image from any registry, by tag or digest (default: none, from scratch)')
    .option('--prefix <path>', 'where the directory goes in the image', '/');
  return addOutputOptions(addImageConfigOptions(command)).action(buildFromDirCommand);
}
