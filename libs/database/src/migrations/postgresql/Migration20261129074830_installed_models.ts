import { Migration } from '@mikro-orm/migrations';

export class Migration20261129074830_installed_models extends Migration {

  override name = 'Migration20261129074830_installed_models';

  override up(): void | Promise<void> {
    this.addSql(`create table "installed_models" ("id" uuid not null, "name" varchar(63) not null, "kind" varchar(32) not null, "contract" varchar(64) not null, "files" jsonb not null, "config" jsonb not null, "entry" jsonb not null, "installed_by" varchar(255) not null, "installed_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`alter table "installed_models" add constraint "installed_models_name_unique" unique ("name");`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "installed_models" cascade;`);
  }

}
