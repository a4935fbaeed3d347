import { Migration } from '@mikro-orm/migrations';

export class Migration20261129020945_booth extends Migration {

  override name = 'Migration20261129020945_booth';

  override up(): void | Promise<void> {
    this.addSql(`create table \`booth_submissions\` (\`id\` text not null primary key, \`owner_id\` text not null, \`job_id\` text not null, \`qr_code_id\` text not null, \`open_qr_code\` text null, \`first_name\` text not null, \`last_name\` text not null, \`animal_name\` text not null, \`animal_type\` text not null, \`broken_bone\` integer not null default false, \`original_key\` text not null, \`original_content_type\` text not null, \`width\` integer not null, \`height\` integer not null, \`decision\` text null, \`choice\` integer null, \`review_round\` integer not null default 0, \`xray_key\` text null, \`original_png_key\` text null, \`reviewed_at\` datetime null, \`created_at\` datetime not null, constraint \`booth_submissions_owner_id_foreign\` foreign key (\`owner_id\`) references \`users\` (\`id\`) on delete cascade, constraint \`booth_submissions_job_id_foreign\` foreign key (\`job_id\`) references \`jobs\` (\`id\`) on delete cascade, constraint \`booth_submissions_qr_code_id_foreign\` foreign key (\`qr_code_id\`) references \`qr_codes\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`booth_submissions_owner_id_index\` on \`booth_submissions\` (\`owner_id\`);`);
    this.addSql(`create unique index \`booth_submissions_job_id_unique\` on \`booth_submissions\` (\`job_id\`);`);
    this.addSql(`create index \`booth_submissions_qr_code_id_index\` on \`booth_submissions\` (\`qr_code_id\`);`);
    this.addSql(`create unique index \`booth_submissions_open_qr_code_unique\` on \`booth_submissions\` (\`open_qr_code\`);`);
    this.addSql(`create index \`booth_submissions_owner_id_created_at_index\` on \`booth_submissions\` (\`owner_id\`, \`created_at\`);`);

    this.addSql(`create table \`booth_carousel\` (\`id\` text not null primary key, \`submission_id\` text not null, \`xray_key\` text not null, \`original_key\` text not null, \`created_at\` datetime not null, constraint \`booth_carousel_submission_id_foreign\` foreign key (\`submission_id\`) references \`booth_submissions\` (\`id\`) on delete cascade);`);
    this.addSql(`create index \`booth_carousel_submission_id_index\` on \`booth_carousel\` (\`submission_id\`);`);
    this.addSql(`create index \`booth_carousel_created_at_index\` on \`booth_carousel\` (\`created_at\`);`);
  }

  override down(): void | Promise<void> {

    this.addSql(`drop table if exists \`booth_submissions\`;`);
    this.addSql(`drop table if exists \`booth_carousel\`;`);
  }

}
