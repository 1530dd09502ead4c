import { Command } from 'commander';
import { UserError } from '../../errors.js';
import { diffImages, formatDiff, formatDiffMarkdown } from '../../report/diff.js';
import { openSourceImage } from '../../report/image-source.js';
import { analyzeImage } from '../../report/inspect.js';
import { createProgress } from '../progress.js';
import { addReadImageOptions, imageOpenOptions, parseTop, type ReadImageFlags } from './inspect.js';

interface DiffOptions extends ReadImageFlags {
  json?: boolean;
  markdown?: boolean;
  top: number;
}

async function diffCommand(before: string, after: string, options: DiffOptions): Promise<void> {
  if (options.json && options.markdown) throw new UserError('--json and --markdown exclude each other: choose one');
  const progress = createProgress({ quiet: options.json || options.markdown || options.quiet });
  const open = imageOpenOptions(options, progress);
  // Both images are opened (and their names checked) before either is read.
  const sources = [await openSourceImage(before, open), await openSourceImage(after, open)];
  const [a, b] = [await analyzeImage(sources[0]!, { hash: true, progress }), await analyzeImage(sources[1]!, { hash: true, progress })];
  progress.close();
  const report = diffImages(a!, b!);
  if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else if (options.markdown) process.stdout.write(`${formatDiffMarkdown(report, options.top)}\n`);
  else process.stdout.write(`${formatDiff(report, options.top)}\n`);
}

export function diffCommandDefinition(): Command {
  const command = new Command('diff')
    .description('show what changed between two images: components added, removed or changed in version, size per layer and per owner, files')
    .argument('<before>', 'the image before: oci:DIR[:TAG], docker-archive:FILE[:REF], or a registry reference')
    .argument('<after>', 'the image after, named the same ways')
    .option('--json', 'print the differences as JSON')
    .option('--markdown', 'print the differences as Markdown, for a pull-request comment')
    .option('--top <n>', 'how many owners and files to list (--json lists all)', parseTop, 20);
  return addReadImageOptions(command).action(diffCommand);
}
