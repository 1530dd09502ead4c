import { Command } from 'commander';
import { UserError } from '../../errors.js';
import { parsePlatform } from '../../oci/platform.js';
import { BlobStore, defaultCacheDir } from '../../oci/store.js';
import { RegistryClient } from '../../registry/client.js';
import { openSourceImage, type OpenImageOptions } from '../../report/image-source.js';
import { analyzeImage, formatInspect, inspectReport } from '../../report/inspect.js';
import { writeTreemapHtml } from '../../report/treemap-html.js';
import type { Progress } from '../../progress.js';
import { createProgress } from '../progress.js';
import { collect } from '../run.js';

/** The flags every command that reads images shares. */
export interface ReadImageFlags {
  platform?: string;
  insecureRegistry: string[];
  cacheDir?: string;
  quiet?: boolean;
  debug?: boolean;
}

export function addReadImageOptions(command: Command): Command {
  return command
    .option('--platform <os/arch>', "the platform to take from a multi-platform image (default: this machine's, else the only one)")
    .option('--insecure-registry <host>', 'allow plain http to this registry (localhost and 127.0.0.1 always are)', collect, [])
    .option('--cache-dir <dir>', `where blobs of registry images are kept, verified (default: $UVIMAGE_CACHE_DIR, else $XDG_CACHE_HOME/uvimage; now ${defaultCacheDir()})`)
    .option('-q, --quiet', 'print only errors and the result (no progress, no warnings)')
    .option('--debug', 'print stack traces for errors');
}

/** How the image-reading commands open images: one store and one registry client, made only when a registry image needs them. */
export function imageOpenOptions(flags: ReadImageFlags, progress: Progress): OpenImageOptions {
  let store: Promise<BlobStore> | undefined;
  let client: RegistryClient | undefined;
  return {
    platform: flags.platform ? parsePlatform(flags.platform) : undefined,
    store: () => (store ??= BlobStore.open(flags.cacheDir ?? defaultCacheDir())),
    client: () => (client ??= new RegistryClient({ insecureRegistries: flags.insecureRegistry })),
    progress,
  };
}

export function parseTop(text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UserError(`--top: ${JSON.stringify(text)} is not a whole number`);
  return Number(text);
}

interface InspectOptions extends ReadImageFlags {
  json?: boolean;
  html?: string;
  top: number;
}

async function inspectCommand(image: string, options: InspectOptions): Promise<void> {
  const progress = createProgress({ quiet: options.json || options.quiet });
  const source = await openSourceImage(image, imageOpenOptions(options, progress));
  const analysis = await analyzeImage(source, { progress });
  progress.close();
  const report = inspectReport(analysis, { top: options.top });
  if (!options.quiet) for (const warning of report.warnings) process.stderr.write(`uvimage: warning: ${warning}\n`);
  if (options.html) await writeTreemapHtml(options.html, analysis, report);
  if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${formatInspect(report)}${options.html ? `\n\nwrote ${options.html}` : ''}\n`);
}

export function inspectCommandDefinition(): Command {
  const command = new Command('inspect')
    .description('show where the bytes of an image go: per layer its sizes and owners (Debian packages, Python distributions, runtime, project), the largest files, what later layers shadow')
    .argument('<image>', 'oci:DIR[:TAG], docker-archive:FILE[:REF], or a registry reference (registry.example.com/repo:tag, …@sha256:…)')
    .option('--json', 'print the report as JSON')
    .option('--html <file>', 'also write a self-contained HTML page with a zoomable treemap and a sortable table')
    .option('--top <n>', 'how many of the largest and of the shadowed files to list', parseTop, 20);
  return addReadImageOptions(command).action(inspectCommand);
}
