PRAGMA defer_foreign_keys=TRUE;
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token TEXT NOT NULL UNIQUE,
    tenant_url TEXT NOT NULL,
    status TEXT DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'maintenance')),
    remark TEXT DEFAULT '',
    usage_count INTEGER DEFAULT 0,
    last_used_at DATETIME,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO "tokens" ("id","token","tenant_url","status","remark","usage_count","last_used_at","created_at","updated_at") VALUES(1,'3f1c9a7e5b2d4f608a1e9c3b7d5f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b3d5f','https://d5.api.augmentcode.com/','active','team pool #1',1287,'2025-07-14 09:12:44','2025-05-02 10:00:00','2025-07-14 09:12:44');
INSERT INTO "tokens" ("id","token","tenant_url","status","remark","usage_count","last_used_at","created_at","updated_at") VALUES(2,'b7e4d2a9c1f8e6b3a5d7c9e1f3b5a7d9c2e4f6a8b1d3e5f7a9c2b4d6e8f1a3c5','https://d12.api.augmentcode.com','active','Bob''s trial account',342,'2025-07-13 22:01:05','2025-05-10 08:30:00','2025-07-13 22:01:05');
INSERT INTO "tokens" ("id","token","tenant_url","status","remark","usage_count","last_used_at","created_at","updated_at") VALUES(3,'0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d0e2f4a6b8c1d3e5f7a9b0c2d4e6f8a1b','https://i3.api.augmentcode.com/','disabled','账号被封 2025-06',5012,'2025-06-30 17:45:10','2025-04-20 12:00:00','2025-06-30 18:00:00');
INSERT INTO "tokens" ("id","token","tenant_url","status","remark","usage_count","last_used_at","created_at","updated_at") VALUES(4,'c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8','https://d20.api.augmentcode.com/','maintenance','spare; not assigned yet -- keep',0,NULL,'2025-07-01 00:00:00','2025-07-01 00:00:00');
CREATE TABLE sqlite_sequence(name,seq);
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    personal_token TEXT NOT NULL UNIQUE,
    username TEXT,
    email TEXT,
    status TEXT DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'disabled')),
    token_quota INTEGER DEFAULT 0,  -- 分配的Token数量配额
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    last_login_at DATETIME
);
INSERT INTO "users" ("id","personal_token","username","email","status","token_quota","created_at","updated_at","last_login_at") VALUES(1,'9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b','alice','alice@example.com','active',3,'2025-05-02 10:05:00','2025-05-02 10:05:00','2025-07-14 09:00:00');
INSERT INTO "users" ("id","personal_token","username","email","status","token_quota","created_at","updated_at","last_login_at") VALUES(2,'1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c','Bob.Smith','bob@example.com','active',1,'2025-05-10 08:35:00','2025-06-01 12:00:00',NULL);
INSERT INTO "users" ("id","personal_token","username","email","status","token_quota","created_at","updated_at","last_login_at") VALUES(3,'e5f4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4','张三','zhangsan@example.cn','active',2,'2025-05-20 14:00:00','2025-05-20 14:00:00','2025-07-10 21:30:00');
INSERT INTO "users" ("id","personal_token","username","email","status","token_quota","created_at","updated_at","last_login_at") VALUES(4,'7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b','dave','dave@example.com','suspended',3,'2025-06-02 09:00:00','2025-07-01 09:00:00',NULL);
INSERT INTO "users" ("id","personal_token","username","email","status","token_quota","created_at","updated_at","last_login_at") VALUES(5,'2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e',NULL,NULL,'active',0,'2025-07-02 11:11:11','2025-07-02 11:11:11',NULL);
INSERT INTO "users" ("id","personal_token","username","email","status","token_quota","created_at","updated_at","last_login_at") VALUES(6,'4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a','ALICE','alice.two@example.com','disabled',1,'2025-07-03 08:00:00','2025-07-03 08:00:00',NULL);
INSERT INTO "users" ("id","personal_token","username","email","status","token_quota","created_at","updated_at","last_login_at") VALUES(7,'pt-eve','eve','eve at example dot com','active',1,'2025-07-05 16:20:00','2025-07-05 16:20:00',NULL);
CREATE TABLE user_token_allocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    token_id INTEGER NOT NULL,
    allocated_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    status TEXT DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    priority INTEGER DEFAULT 1,  -- 优先级，数字越小优先级越高
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE,
    FOREIGN KEY (token_id) REFERENCES tokens(id) ON DELETE CASCADE,
    UNIQUE(user_id, token_id)
);
INSERT INTO "user_token_allocations" ("id","user_id","token_id","allocated_at","status","priority") VALUES(1,1,1,'2025-05-02 10:06:00','active',1);
INSERT INTO "user_token_allocations" ("id","user_id","token_id","allocated_at","status","priority") VALUES(2,1,2,'2025-05-10 09:00:00','active',2);
INSERT INTO "user_token_allocations" ("id","user_id","token_id","allocated_at","status","priority") VALUES(3,2,2,'2025-05-10 08:40:00','active',1);
INSERT INTO "user_token_allocations" ("id","user_id","token_id","allocated_at","status","priority") VALUES(4,2,3,'2025-05-10 08:40:00','revoked',1);
INSERT INTO "user_token_allocations" ("id","user_id","token_id","allocated_at","status","priority") VALUES(5,3,1,'2025-05-20 14:05:00','active',1);
INSERT INTO "user_token_allocations" ("id","user_id","token_id","allocated_at","status","priority") VALUES(6,3,4,'2025-07-01 00:10:00','active',3);
INSERT INTO "user_token_allocations" ("id","user_id","token_id","allocated_at","status","priority") VALUES(7,4,1,'2025-06-02 09:05:00','active',1);
INSERT INTO "user_token_allocations" ("id","user_id","token_id","allocated_at","status","priority") VALUES(8,2,1,'2025-06-01 12:00:00','active',2);
INSERT INTO "user_token_allocations" ("id","user_id","token_id","allocated_at","status","priority") VALUES(9,5,9,'2025-07-02 11:12:00','active',1);
CREATE TABLE user_usage_stats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    token_id INTEGER NOT NULL,
    date DATE DEFAULT (date('now')),
    request_count INTEGER DEFAULT 0,
    success_count INTEGER DEFAULT 0,
    error_count INTEGER DEFAULT 0,
    total_tokens_used INTEGER DEFAULT 0,  -- 消耗的Token数量
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE,
    FOREIGN KEY (token_id) REFERENCES tokens(id) ON DELETE CASCADE,
    UNIQUE(user_id, token_id, date)
);
INSERT INTO "user_usage_stats" ("id","user_id","token_id","date","request_count","success_count","error_count","total_tokens_used","created_at","updated_at") VALUES(1,1,1,'2025-07-13',41,40,1,0,'2025-07-13 00:01:00','2025-07-13 23:58:00');
INSERT INTO "user_usage_stats" ("id","user_id","token_id","date","request_count","success_count","error_count","total_tokens_used","created_at","updated_at") VALUES(2,2,2,'2025-07-13',12,12,0,0,'2025-07-13 08:00:00','2025-07-13 22:01:05');
CREATE TABLE admins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    email TEXT,
    role TEXT DEFAULT 'admin' CHECK (role IN ('super_admin', 'admin', 'viewer')),
    status TEXT DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    last_login_at DATETIME
);
INSERT INTO "admins" ("id","username","password_hash","email","role","status","created_at","last_login_at") VALUES(1,'admin','','admin@example.com','super_admin','active','2025-04-20 11:00:00','2025-07-14 08:00:00');
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_token TEXT NOT NULL UNIQUE,
    user_type TEXT DEFAULT 'admin' CHECK (user_type IN ('admin', 'user')),
    user_id INTEGER,
    expires_at DATETIME NOT NULL,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE system_config (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    config_key TEXT NOT NULL UNIQUE,
    config_value TEXT NOT NULL,
    description TEXT,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO "system_config" ("id","config_key","config_value","description","updated_at") VALUES(1,'default_token_quota','3','新用户默认Token配额','2025-04-20 11:00:00');
INSERT INTO "system_config" ("id","config_key","config_value","description","updated_at") VALUES(2,'max_token_quota','10','单用户最大Token配额','2025-04-20 11:00:00');
DELETE FROM sqlite_sequence;
INSERT INTO "sqlite_sequence" VALUES('tokens',4);
INSERT INTO "sqlite_sequence" VALUES('users',7);
INSERT INTO "sqlite_sequence" VALUES('user_token_allocations',9);
INSERT INTO "sqlite_sequence" VALUES('user_usage_stats',2);
INSERT INTO "sqlite_sequence" VALUES('admins',1);
INSERT INTO "sqlite_sequence" VALUES('system_config',2);
CREATE INDEX idx_tokens_status ON tokens(status);
CREATE INDEX idx_users_personal_token ON users(personal_token);
CREATE INDEX idx_allocations_user_id ON user_token_allocations(user_id);
CREATE INDEX idx_allocations_priority ON user_token_allocations(priority);
