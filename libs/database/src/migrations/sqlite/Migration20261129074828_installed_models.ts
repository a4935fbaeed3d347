import { Migration } from '@mikro-orm/migrations';

export class Migration20261129074828_installed_models extends Migration {

  override name = 'Migration20261129074828_installed_models';

  override up(): void | Promise<void> {
    this.addSql(`create table \`installed_models\` (\`id\` text not null primary key, \`name\` text not null, \`kind\` text not null, \`contract\` text not null, \`files\` json not null, \`config\` json not null, \`entry\` json not null, \`installed_by\` text not null, \`installed_at\` datetime not null);`);
    this.addSql(`create unique index \`installed_models_name_unique\` on \`installed_models\` (\`name\`);`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists \`installed_models\`;`);
  }

}
