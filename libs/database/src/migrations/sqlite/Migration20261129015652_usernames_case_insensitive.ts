import { Migration } from '@mikro-orm/migrations';

export class Migration20261129015652_usernames_case_insensitive extends Migration {

  override name = 'Migration20261129015652_usernames_case_insensitive';

  override up(): void | Promise<void> {
    this.addSql(`create unique index "users_username_lower_unique" on "users" (lower("username"));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index \`users_username_lower_unique\`;`);
  }

}
