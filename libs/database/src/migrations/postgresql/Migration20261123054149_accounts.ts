import { Migration } from '@mikro-orm/migrations';

export class Migration20261123054149_accounts extends Migration {

  override name = 'Migration20261123054149_accounts';

  override up(): void | Promise<void> {
    this.addSql(`create table "api_keys" ("id" uuid not null, "owner_id" uuid not null, "name" varchar(100) not null, "prefix" varchar(16) not null, "key_hash" varchar(64) not null, "created_at" timestamptz not null, "last_used_at" timestamptz null, "revoked_at" timestamptz null, primary key ("id"));`);
    this.addSql(`alter table "api_keys" add constraint "api_keys_key_hash_unique" unique ("key_hash");`);

    this.addSql(`alter table "users" add "first_name" varchar(100) null, add "last_name" varchar(100) null, add "phone" varchar(32) null, add "birth_date" varchar(10) null, add "picture_url" varchar(2048) null, add "google_sub" varchar(255) null, add "token_version" int not null default 0;`);
    this.addSql(`alter table "users" add constraint "users_google_sub_unique" unique ("google_sub");`);

    this.addSql(`alter table "api_keys" add constraint "api_keys_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "api_keys" cascade;`);

    this.addSql(`alter table "users" drop constraint "users_google_sub_unique";`);
    this.addSql(`alter table "users" drop column "first_name", drop column "last_name", drop column "phone", drop column "birth_date", drop column "picture_url", drop column "google_sub", drop column "token_version";`);
  }

}
