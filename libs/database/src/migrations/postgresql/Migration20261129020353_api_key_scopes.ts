import { Migration } from '@mikro-orm/migrations';

export class Migration20261129020353_api_key_scopes extends Migration {

  override name = 'Migration20261129020353_api_key_scopes';

  override up(): void | Promise<void> {
    this.addSql(`alter table "api_keys" add "scopes" jsonb null, add "expires_at" timestamptz null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "api_keys" drop column "scopes", drop column "expires_at";`);
  }

}
