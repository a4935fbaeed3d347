import { Migration } from '@mikro-orm/migrations';

export class Migration20261123054148_accounts extends Migration {

  override name = 'Migration20261123054148_accounts';

  override up(): void | Promise<void> {
    this.addSql(`create table \`api_keys\` (\`id\` text not null primary key, \`owner_id\` text not null, \`name\` text not null, \`prefix\` text not null, \`key_hash\` text not null, \`created_at\` datetime not null, \`last_used_at\` datetime null, \`revoked_at\` datetime null, constraint \`api_keys_owner_id_foreign\` foreign key (\`owner_id\`) references \`users\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`api_keys_owner_id_index\` on \`api_keys\` (\`owner_id\`);`);
    this.addSql(`create unique index \`api_keys_key_hash_unique\` on \`api_keys\` (\`key_hash\`);`);

    this.addSql(`alter table \`users\` add column \`first_name\` text null;`);
    this.addSql(`alter table \`users\` add column \`last_name\` text null;`);
    this.addSql(`alter table \`users\` add column \`phone\` text null;`);
    this.addSql(`alter table \`users\` add column \`birth_date\` text null;`);
    this.addSql(`alter table \`users\` add column \`picture_url\` text null;`);
    this.addSql(`alter table \`users\` add column \`google_sub\` text null;`);
    this.addSql(`alter table \`users\` add column \`token_version\` integer not null default 0;`);
    this.addSql(`create unique index \`users_google_sub_unique\` on \`users\` (\`google_sub\`);`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists \`api_keys\`;`);

    this.addSql(`drop index \`users_google_sub_unique\`;`);
    this.addSql(`alter table \`users\` drop column \`first_name\`;`);
    this.addSql(`alter table \`users\` drop column \`last_name\`;`);
    this.addSql(`alter table \`users\` drop column \`phone\`;`);
    this.addSql(`alter table \`users\` drop column \`birth_date\`;`);
    this.addSql(`alter table \`users\` drop column \`picture_url\`;`);
    this.addSql(`alter table \`users\` drop column \`google_sub\`;`);
    this.addSql(`alter table \`users\` drop column \`token_version\`;`);
  }

}
