import { Command } from 'commander';
import { toolUvimageJsonSchema } from '../../config/schema.js';

/** Prints the JSON Schema of [tool.uvimage], for editors that validate TOML (taplo, Even Better TOML). */
export function configSchemaCommandDefinition(): Command {
  return new Command('config-schema')
    .description('print the JSON Schema of the [tool.uvimage] table of pyproject.toml')
    .action(() => {
      process.stdout.write(`${JSON.stringify(toolUvimageJsonSchema(), null, 2)}\n`);
    });
}
