import { Migration } from '@mikro-orm/migrations';

export class Migration20261129020351_api_key_scopes extends Migration {

  override name = 'Migration20261129020351_api_key_scopes';

  override up(): void | Promise<void> {
    this.addSql(`alter table \`api_keys\` add column \`scopes\` json null;`);
    this.addSql(`alter table \`api_keys\` add column \`expires_at\` datetime null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`api_keys\` drop column \`scopes\`;`);
    this.addSql(`alter table \`api_keys\` drop column \`expires_at\`;`);
  }

}
