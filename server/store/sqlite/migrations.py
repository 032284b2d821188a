"""Numbered schema migrations. Append only: a released migration is never edited.

Over 400 lines, knowingly: the schema's whole history reads in order in one place.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE devices (
            device_id TEXT PRIMARY KEY,          -- 24 lowercase hex characters
            public_key BLOB NOT NULL,            -- X25519 static public key, 32 bytes
            owner TEXT,
            platform_id INTEGER,
            product_id INTEGER,                  -- the product the cloud says it belongs to
            firmware_version INTEGER,
            created_at REAL NOT NULL,
            last_heard REAL,
            last_handshake_at REAL,
            online INTEGER NOT NULL DEFAULT 0,
            last_counter INTEGER NOT NULL DEFAULT 0  -- highest confirmed hello counter
        ) WITHOUT ROWID;

        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            device_id TEXT NOT NULL,
            product_id INTEGER,                  -- set when routed to the product stream
            name TEXT NOT NULL,
            data BLOB NOT NULL,
            ttl INTEGER NOT NULL,
            private INTEGER NOT NULL,
            published_at REAL NOT NULL
        );
        CREATE INDEX events_by_device ON events (device_id, id);
        """,
    ),
]

MIGRATIONS.append(
    (
        2,
        """
        -- Products, people, lists and the audit trail (issue 3).
        CREATE TABLE products (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            policy TEXT NOT NULL DEFAULT 'quarantine'
                CHECK (policy IN ('quarantine', 'auto_approve', 'preadd_only')),
            created_at REAL NOT NULL
        );

        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            is_admin INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );

        CREATE TABLE team (
            product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('administrator', 'developer', 'support', 'view_only')),
            PRIMARY KEY (product_id, user_id)
        );

        CREATE TABLE customers (
            id INTEGER PRIMARY KEY,
            product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
            username TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (product_id, username)
        );

        CREATE TABLE tokens (
            token_hash BLOB PRIMARY KEY,          -- SHA-256 of the bearer token
            user_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
            customer_id INTEGER REFERENCES customers (id) ON DELETE CASCADE,
            scopes TEXT NOT NULL,                 -- space-separated; '*' for all the holder may do
            client TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL,                      -- NULL: never
            refresh INTEGER NOT NULL DEFAULT 0,   -- 1: a refresh token (not a bearer token)
            CHECK ((user_id IS NULL) != (customer_id IS NULL))
        ) WITHOUT ROWID;

        -- Quarantine and Denied lists, and the memory of removed devices, per product.
        CREATE TABLE product_devices (
            product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
            device_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('quarantined', 'denied', 'removed')),
            updated_at REAL NOT NULL,
            PRIMARY KEY (product_id, device_id)
        ) WITHOUT ROWID;
        CREATE INDEX product_devices_by_device ON product_devices (device_id);

        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,                  -- 'user:<name>', 'customer:<name>', 'device', 'system'
            action TEXT NOT NULL,
            product_id INTEGER,
            device_id TEXT,
            reason TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'     -- JSON
        );
        CREATE INDEX audit_by_product ON audit (product_id, id);
        CREATE INDEX audit_by_device ON audit (device_id, id);

        -- Devices: a key is optional (a pre-added device may get its key later), owners are typed,
        -- and operator fields are added. SQLite cannot relax NOT NULL in place: rebuild.
        CREATE TABLE devices_v2 (
            device_id TEXT PRIMARY KEY,
            public_key BLOB,                     -- NULL: no key registered yet (cannot connect)
            created_at REAL NOT NULL,
            owner_kind TEXT CHECK (owner_kind IN ('user', 'customer')),
            owner_id INTEGER,
            platform_id INTEGER,
            product_id INTEGER REFERENCES products (id),
            firmware_version INTEGER,
            firmware_product_id INTEGER,         -- product ID the firmware last reported
            last_heard REAL,
            last_handshake_at REAL,
            online INTEGER NOT NULL DEFAULT 0,
            last_counter INTEGER NOT NULL DEFAULT 0,
            development INTEGER NOT NULL DEFAULT 0,
            name TEXT,
            notes TEXT,
            CHECK ((owner_kind IS NULL) = (owner_id IS NULL))
        ) WITHOUT ROWID;
        INSERT INTO devices_v2 (device_id, public_key, created_at, platform_id, firmware_version,
                                last_heard, last_handshake_at, online, last_counter)
            SELECT device_id, public_key, created_at, platform_id, firmware_version,
                   last_heard, last_handshake_at, online, last_counter FROM devices;
        DROP TABLE devices;
        ALTER TABLE devices_v2 RENAME TO devices;
        CREATE INDEX devices_by_product ON devices (product_id);
        """,
    )
)

MIGRATIONS.append(
    (
        3,
        """
        -- An access token and the refresh token issued with it share a grant: revoking one
        -- revokes both, so a refresh token cannot outlive a logout.
        ALTER TABLE tokens ADD COLUMN grant_id TEXT;
        CREATE INDEX tokens_by_grant ON tokens (grant_id);
        """,
    )
)

MIGRATIONS.append(
    (
        4,
        """
        -- Product firmware, device groups, releases and per-device locks (issue 4).
        CREATE TABLE firmware (
            product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
            version INTEGER NOT NULL CHECK (version BETWEEN 1 AND 65535),
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL DEFAULT '',        -- the uploaded file's name, shown only; never a path
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,                 -- hex; the file is firmware/<product>/<version>-<sha256[:16]>.bin
            signature BLOB,                       -- detached Ed25519 signature (64 bytes), if uploaded with one
            platform_id INTEGER NOT NULL,
            uploaded_at REAL NOT NULL,
            uploaded_by TEXT NOT NULL,            -- the actor, as in the audit trail
            released_at REAL,                     -- NULL: not released to any target
            PRIMARY KEY (product_id, version)
        ) WITHOUT ROWID;

        CREATE TABLE device_groups (
            id INTEGER PRIMARY KEY,
            product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9_-]*'),
            description TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            UNIQUE (product_id, name)
        );

        CREATE TABLE device_group_members (
            group_id INTEGER NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
            device_id TEXT NOT NULL REFERENCES devices (device_id),
            PRIMARY KEY (group_id, device_id)
        ) WITHOUT ROWID;
        CREATE INDEX device_group_members_by_device ON device_group_members (device_id);

        -- Where each version is released: the product default (group_id NULL, one per product)
        -- or a group (one version per group). A release's row keeps it from being deleted.
        CREATE TABLE firmware_releases (
            product_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            group_id INTEGER REFERENCES device_groups (id) ON DELETE CASCADE,
            intelligent INTEGER NOT NULL DEFAULT 0,
            released_at REAL NOT NULL,
            released_by TEXT NOT NULL,
            FOREIGN KEY (product_id, version) REFERENCES firmware (product_id, version)
        );
        CREATE UNIQUE INDEX firmware_releases_default ON firmware_releases (product_id) WHERE group_id IS NULL;
        CREATE UNIQUE INDEX firmware_releases_group ON firmware_releases (group_id) WHERE group_id IS NOT NULL;
        CREATE INDEX firmware_releases_by_version ON firmware_releases (product_id, version);

        -- A device locked to one version of its product's firmware (Particle's desired_firmware_version).
        CREATE TABLE firmware_locks (
            device_id TEXT PRIMARY KEY REFERENCES devices (device_id),
            product_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            locked_at REAL NOT NULL,
            locked_by TEXT NOT NULL,
            FOREIGN KEY (product_id, version) REFERENCES firmware (product_id, version)
        ) WITHOUT ROWID;
        CREATE INDEX firmware_locks_by_version ON firmware_locks (product_id, version);

        -- Groups and locks belong to a product: a device that leaves it (removed, denied, moved)
        -- leaves its groups and its lock, whichever code path changed its membership.
        CREATE TRIGGER devices_leave_product_firmware AFTER UPDATE OF product_id ON devices
        WHEN OLD.product_id IS NOT NEW.product_id
        BEGIN
            DELETE FROM device_group_members WHERE device_id = NEW.device_id
                AND group_id IN (SELECT id FROM device_groups WHERE product_id = OLD.product_id);
            DELETE FROM firmware_locks WHERE device_id = NEW.device_id;
        END;
        """,
    )
)

MIGRATIONS.append(
    (
        5,
        """
        -- The last OTA outcome per device: what was installed, and whether the device came back
        -- running it. A device that comes back on its old version is not offered that image again.
        CREATE TABLE device_ota (
            device_id TEXT PRIMARY KEY,
            product_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('installed', 'confirmed', 'failed')),
            reason TEXT NOT NULL DEFAULT '',
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    )
)

MIGRATIONS.append(
    (
        6,
        """
        -- Staged rollouts (issue 4): one row per rollout, one per device in it. Settings and the
        -- target are JSON: they are read whole and never queried by field.
        CREATE TABLE rollouts (
            id INTEGER PRIMARY KEY,
            product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            target TEXT NOT NULL,                 -- JSON: product_default, groups, devices
            settings TEXT NOT NULL,               -- JSON: strategy, stages, thresholds, limits
            state TEXT NOT NULL CHECK (state IN
                ('running', 'paused', 'completed', 'aborted', 'rolling_back', 'rolled_back')),
            state_reason TEXT NOT NULL DEFAULT '',
            current_stage INTEGER NOT NULL DEFAULT 0,
            rate_budget REAL NOT NULL DEFAULT 0,
            error_action_fired INTEGER NOT NULL DEFAULT 0,
            failures_forgiven INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL,
            FOREIGN KEY (product_id, version) REFERENCES firmware (product_id, version)
        );
        CREATE INDEX rollouts_by_product ON rollouts (product_id, id);
        CREATE INDEX rollouts_active ON rollouts (state) WHERE state IN ('running', 'paused', 'rolling_back');

        CREATE TABLE rollout_devices (
            rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
            device_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            stage INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'offered', 'downloading', 'installed',
                                                 'confirmed', 'failed', 'skipped', 'rolled_back')),
            phase TEXT NOT NULL DEFAULT 'update' CHECK (phase IN ('update', 'rollback')),
            attempts INTEGER NOT NULL DEFAULT 0,
            from_version INTEGER,
            assigned_version INTEGER,             -- the target this rollout gives the device now
            reason TEXT NOT NULL DEFAULT '',
            offered_at REAL,
            next_try_at REAL NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL,
            PRIMARY KEY (rollout_id, device_id)
        ) WITHOUT ROWID;
        CREATE INDEX rollout_devices_by_device ON rollout_devices (device_id, rollout_id);
        CREATE INDEX rollout_devices_by_position ON rollout_devices (rollout_id, position);
        """,
    )
)

MIGRATIONS.append(
    (
        7,
        """
        -- Claim codes (issue 5): a customer asks for one; a device presents it in its hello. Only
        -- the SHA-256 of a code is kept: the code itself is a bearer secret, like a token.
        CREATE TABLE claim_codes (
            code_hash BLOB PRIMARY KEY,
            product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
            customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            claimed_device TEXT,                  -- set once used: a code is single-use
            claimed_at REAL
        ) WITHOUT ROWID;
        CREATE INDEX claim_codes_by_customer ON claim_codes (customer_id);
        """,
    )
)

MIGRATIONS.append(
    (
        8,
        """
        -- A cloud event addressed to one device (a webhook's response): device_id is that device,
        -- and only it receives the event on its link (issue 5).
        ALTER TABLE events ADD COLUMN to_device TEXT;
        """,
    )
)

MIGRATIONS.append(
    (
        9,
        """
        -- Product webhooks (issue 5). The configuration is JSON in Particle's field names: it is
        -- read whole, never queried by field. The secret signs each request (HMAC-SHA256).
        CREATE TABLE webhooks (
            id INTEGER PRIMARY KEY,
            product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
            spec TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL
        );
        CREATE INDEX webhooks_by_product ON webhooks (product_id, id);
        """,
    )
)

MIGRATIONS.append(
    (
        10,
        """
        -- A finished rollout keeps its history, not its firmware: the version it delivered may be
        -- deleted once no rollout still needs it (issue 12), so rollouts lose their foreign key to
        -- firmware. SQLite cannot drop a constraint: both tables are rebuilt (rollout_devices first,
        -- since dropping rollouts would cascade into it), then renamed into place.
        CREATE TABLE rollouts_v10 (
            id INTEGER PRIMARY KEY,
            product_id INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            target TEXT NOT NULL,
            settings TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('running', 'paused', 'completed', 'aborted', 'rolling_back', 'rolled_back')),
            state_reason TEXT NOT NULL DEFAULT '',
            current_stage INTEGER NOT NULL DEFAULT 0,
            rate_budget REAL NOT NULL DEFAULT 0,
            error_action_fired INTEGER NOT NULL DEFAULT 0,
            failures_forgiven INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL
        );
        INSERT INTO rollouts_v10 SELECT
            id, product_id, version, target, settings, state, state_reason, current_stage, rate_budget,
            error_action_fired, failures_forgiven, created_at, created_by, updated_at, finished_at
        FROM rollouts;

        CREATE TABLE rollout_devices_v10 (
            rollout_id INTEGER NOT NULL REFERENCES rollouts_v10 (id) ON DELETE CASCADE,
            device_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            stage INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'offered', 'downloading', 'installed',
                                                 'confirmed', 'failed', 'skipped', 'rolled_back')),
            phase TEXT NOT NULL DEFAULT 'update' CHECK (phase IN ('update', 'rollback')),
            attempts INTEGER NOT NULL DEFAULT 0,
            from_version INTEGER,
            assigned_version INTEGER,
            reason TEXT NOT NULL DEFAULT '',
            offered_at REAL,
            next_try_at REAL NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL,
            PRIMARY KEY (rollout_id, device_id)
        ) WITHOUT ROWID;
        INSERT INTO rollout_devices_v10 SELECT
            rollout_id, device_id, position, stage, state, phase, attempts, from_version, assigned_version,
            reason, offered_at, next_try_at, updated_at
        FROM rollout_devices;

        DROP TABLE rollout_devices;
        DROP TABLE rollouts;
        ALTER TABLE rollouts_v10 RENAME TO rollouts;  -- also renames rollout_devices_v10's reference
        ALTER TABLE rollout_devices_v10 RENAME TO rollout_devices;
        CREATE INDEX rollouts_by_product ON rollouts (product_id, id);
        CREATE INDEX rollouts_active ON rollouts (state) WHERE state IN ('running', 'paused', 'rolling_back');
        CREATE INDEX rollout_devices_by_device ON rollout_devices (device_id, rollout_id);
        CREATE INDEX rollout_devices_by_position ON rollout_devices (rollout_id, position);
        """,
    )
)

MIGRATIONS.append(
    (
        11,
        """
        -- Durable webhook delivery (issue 14). Which events trigger webhooks becomes a column (the
        -- publisher held the webhooks privilege), so deliveries are made from the stored events: a
        -- dispatcher turns the events after its cursor into delivery rows, cursor and rows in one
        -- transaction, and each row keeps its state until the receiver answered 2xx or its retries
        -- ran out. Counters and the latest attempts are kept here too, so they survive a restart.
        -- No index: the dispatcher reads the events just after its cursor, which follows the table's
        -- tail, and an index entry per published event would cost the publish path.
        ALTER TABLE events ADD COLUMN webhooks INTEGER NOT NULL DEFAULT 0;

        -- One row: the last event ID turned into deliveries. Events stored before this migration
        -- were the old in-memory service's to send: the cursor starts after them.
        CREATE TABLE webhook_dispatch (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            cursor INTEGER NOT NULL
        );
        INSERT INTO webhook_dispatch VALUES (1, (SELECT COALESCE(MAX(id), 0) FROM events));

        CREATE TABLE webhook_deliveries (
            id INTEGER PRIMARY KEY,
            webhook_id INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
            event_id INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at REAL NOT NULL,              -- when the next attempt is due (pending only)
            last_status INTEGER,                -- the last answer's HTTP status; NULL: none came
            last_error TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (webhook_id, event_id)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook_id, next_at) WHERE state = 'pending';
        CREATE INDEX webhook_deliveries_done ON webhook_deliveries (state, updated_at) WHERE state != 'pending';

        -- The latest requests per webhook (successes and errors, a bounded number of each).
        CREATE TABLE webhook_attempts (
            id INTEGER PRIMARY KEY,
            webhook_id INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
            event_id INTEGER NOT NULL,
            at REAL NOT NULL,
            attempt INTEGER NOT NULL,
            status INTEGER,
            duration_ms REAL NOT NULL,
            error TEXT NOT NULL,
            ok INTEGER NOT NULL
        );
        CREATE INDEX webhook_attempts_latest ON webhook_attempts (webhook_id, ok, id);

        CREATE TABLE webhook_counters (
            webhook_id INTEGER PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
            triggered INTEGER NOT NULL DEFAULT 0,
            sent INTEGER NOT NULL DEFAULT 0,
            succeeded INTEGER NOT NULL DEFAULT 0,
            retried INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            refused INTEGER NOT NULL DEFAULT 0,
            dropped INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        """,
    )
)

MIGRATIONS.append(
    (
        12,
        """
        -- Secrets at rest (issue 14): webhook secrets and passwords are sealed with a key kept
        -- outside this file. The key check is a fixed text sealed with that key, so a wrong key
        -- is found at start; the plain rows of older versions are sealed when it is written.
        CREATE TABLE secrets_key_check (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            sealed TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        """,
    )
)

MIGRATIONS.append(
    (
        13,
        """
        -- Cluster mode (issue 15).
        -- A device's publish bucket as its last session left it, for the node it connects to next.
        ALTER TABLE devices ADD COLUMN publish_tokens REAL;
        ALTER TABLE devices ADD COLUMN publish_at REAL;
        -- Which node holds each device's live session (store/sqlite/live.py); empty on one node.
        CREATE TABLE live_sessions (
            device_id TEXT PRIMARY KEY,
            node_id TEXT NOT NULL,
            counter INTEGER NOT NULL,
            privileges INTEGER NOT NULL,
            product_id INTEGER,
            since REAL NOT NULL
        );
        CREATE INDEX live_sessions_by_node ON live_sessions (node_id);
        -- The cluster leader's fencing epoch (PostgreSQL only in practice: one node never fences).
        CREATE TABLE cluster_leader (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            epoch INTEGER NOT NULL,
            node_id TEXT NOT NULL,
            since REAL NOT NULL
        );
        CREATE INDEX live_sessions_by_product ON live_sessions (product_id);
        """,
    )
)

MIGRATIONS.append(
    (
        14,
        """
        -- Firmware binaries in the store, so every node of a cluster can serve them (issue 15).
        -- Keyed by content: uploads of the same bytes share one row. A firmware row points at
        -- its binary by its sha256 column; binaries from before this migration are still files
        -- (firmware/<product>/<version>-<sha256[:16]>.bin) until the server's next start moves
        -- them in (firmware/legacy.py), so there is no foreign key.
        CREATE TABLE firmware_blobs (
            sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),  -- hex, of data
            size INTEGER NOT NULL,
            data BLOB NOT NULL
        );
        CREATE INDEX firmware_by_sha256 ON firmware (sha256);
        -- A binary goes with the last firmware row that uses it, whichever way that row went
        -- (a version deleted, or its product).
        CREATE TRIGGER firmware_blob_unused AFTER DELETE ON firmware
        BEGIN
            DELETE FROM firmware_blobs WHERE sha256 = OLD.sha256
                AND NOT EXISTS (SELECT 1 FROM firmware WHERE sha256 = OLD.sha256);
        END;
        """,
    )
)

MIGRATIONS.append(
    (
        15,
        """
        -- The devices hub (issue 16), at 20,000 devices: its change stream asks each second which
        -- members went offline (last_heard after its last look); its list's default order is the
        -- order devices were added, a page at a time without sorting them all.
        CREATE INDEX devices_by_product_heard ON devices (product_id, last_heard);
        CREATE INDEX devices_by_product_added ON devices (product_id, created_at, device_id);
        """,
    )
)

MIGRATIONS.append(
    (
        16,
        """
        -- The admission epoch (issue 17): one number that every change to a fact admission decides
        -- on moves, in the changing transaction, by triggers (no write path can forget it). The
        -- confirming write at READY reuses the HELLO's decision only while the epoch it was read
        -- with is still the epoch; any change in between makes it read and decide again.
        CREATE TABLE admission_epoch (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            n INTEGER NOT NULL
        );
        INSERT INTO admission_epoch (id, n) VALUES (1, 0);
        CREATE TRIGGER admission_epoch_device_added AFTER INSERT ON devices
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_device_deleted AFTER DELETE ON devices
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_device_changed
            AFTER UPDATE OF device_id, product_id, owner_kind, owner_id ON devices
            WHEN OLD.device_id IS NOT NEW.device_id OR OLD.product_id IS NOT NEW.product_id
                OR OLD.owner_kind IS NOT NEW.owner_kind OR OLD.owner_id IS NOT NEW.owner_id
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_product_added AFTER INSERT ON products
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_product_deleted AFTER DELETE ON products
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_product_changed AFTER UPDATE OF id, policy ON products
            WHEN OLD.id IS NOT NEW.id OR OLD.policy IS NOT NEW.policy
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_list_added AFTER INSERT ON product_devices
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_list_deleted AFTER DELETE ON product_devices
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_list_changed AFTER UPDATE ON product_devices
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_team_added AFTER INSERT ON team
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_team_deleted AFTER DELETE ON team
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        CREATE TRIGGER admission_epoch_team_changed AFTER UPDATE ON team
        BEGIN UPDATE admission_epoch SET n = n + 1; END;
        """,
    )
)

MIGRATIONS.append(
    (
        17,
        """
        -- A device's events found through an index the writer fills in bulk (issue 17): the
        -- events_by_device index dirtied one leaf per device per commit (in-process, 100 devices: 18 us
        -- an event with it, 9 with this table). event_device_index holds (device, id) for every event up to
        -- event_index_mark.upto, moved in the same transaction as the rows it covers; readers
        -- scan the events after it (device_events.py). The writer indexes every 1,024 events.
        CREATE TABLE event_device_index (
            device_id TEXT NOT NULL,
            id INTEGER NOT NULL,
            PRIMARY KEY (device_id, id)
        ) WITHOUT ROWID;
        CREATE TABLE event_index_mark (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            upto INTEGER NOT NULL
        );
        INSERT INTO event_device_index (device_id, id) SELECT device_id, id FROM events ORDER BY device_id, id;
        INSERT INTO event_index_mark (id, upto) VALUES (1, (SELECT COALESCE(MAX(id), 0) FROM events));
        DROP INDEX events_by_device;
        """,
    )
)
