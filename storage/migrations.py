"""Ordered, append-only schema migrations, applied at start and tracked by PRAGMA user_version.

Never edit a migration that has shipped: add a new one at the end of MIGRATIONS.
"""

from __future__ import annotations

import aiosqlite

# Each entry is one migration; its 1-based position is the schema version it brings.
MIGRATIONS: tuple[str, ...] = (
    # 1: members, consent, projects, about-you answers, the durable inbox, ptb persistence.
    """
    CREATE TABLE projects (
        id          INTEGER PRIMARY KEY,
        code        TEXT NOT NULL UNIQUE COLLATE NOCASE,
        name        TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE members (
        id                INTEGER PRIMARY KEY,
        telegram_user_id  INTEGER NOT NULL UNIQUE,
        chat_id           INTEGER NOT NULL,
        language          TEXT NOT NULL DEFAULT 'en',
        display_name      TEXT,            -- first name, only if the member chose to be named
        joined_at         TEXT NOT NULL,
        onboarded_at      TEXT,            -- set when the member reached the menu
        stopped_at        TEXT,            -- /stop: no more questions until /resume
        unreachable_at    TEXT             -- Telegram said the member blocked the bot
    );
    CREATE TABLE member_projects (
        member_id   INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        joined_at   TEXT NOT NULL,
        PRIMARY KEY (member_id, project_id)
    );
    -- A receipt outlives the member: erasure unlinks it (member_id NULL) and closes it.
    CREATE TABLE consent_receipts (
        id               INTEGER PRIMARY KEY,
        member_id        INTEGER REFERENCES members(id) ON DELETE SET NULL,
        consent_version  TEXT NOT NULL,
        language         TEXT NOT NULL,
        agreed_to        TEXT NOT NULL,    -- JSON list of what was agreed
        agreed_at        TEXT NOT NULL,
        withdrawn_at     TEXT
    );
    -- "About you" answers; a skipped question has no row.
    CREATE TABLE about_you (
        member_id    INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        field        TEXT NOT NULL,
        answer       TEXT NOT NULL,        -- 'prefer_not_to_say' when the member declined
        answered_at  TEXT NOT NULL,
        PRIMARY KEY (member_id, field)
    );
    -- Every update is recorded here before Telegram is told it arrived; the payload is
    -- cleared once handled, so nothing personal stays behind.
    CREATE TABLE inbox (
        update_id    INTEGER PRIMARY KEY,
        payload      TEXT,
        received_at  TEXT NOT NULL,
        done_at      TEXT
    );
    CREATE INDEX inbox_pending ON inbox (update_id) WHERE done_at IS NULL;
    CREATE TABLE conversations (
        name   TEXT NOT NULL,
        key    TEXT NOT NULL,              -- JSON list, e.g. [chat_id, user_id]
        state  TEXT NOT NULL,              -- JSON
        PRIMARY KEY (name, key)
    );
    CREATE TABLE user_data (
        user_id  INTEGER PRIMARY KEY,
        data     TEXT NOT NULL
    );
    CREATE TABLE audit_log (
        id      INTEGER PRIMARY KEY,
        at      TEXT NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: what members share: stories and ideas (drafts saved step by step), their media,
    # and safeguarding flags.
    """
    CREATE TABLE submissions (
        id            INTEGER PRIMARY KEY,
        member_id     INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        kind          TEXT NOT NULL CHECK (kind IN ('experience', 'idea')),
        project_id    INTEGER REFERENCES projects(id) ON DELETE SET NULL,
        status        TEXT NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'submitted', 'cancelled')),
        language      TEXT NOT NULL,
        volunteer     TEXT CHECK (volunteer IN ('yes', 'maybe', 'no')),
        step          TEXT,              -- where the member is in a draft; NULL when paused
        reviewed      INTEGER NOT NULL DEFAULT 0,  -- reached the review once: parts return to it
        created_at    TEXT NOT NULL,
        submitted_at  TEXT
    );
    CREATE INDEX submissions_member ON submissions (member_id, status);
    -- One row per part of a story or idea; a skipped part has skipped = 1 and no text.
    CREATE TABLE submission_parts (
        submission_id  INTEGER NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
        part           TEXT NOT NULL,
        text           TEXT,
        skipped        INTEGER NOT NULL DEFAULT 0,
        updated_at     TEXT NOT NULL,
        PRIMARY KEY (submission_id, part)
    );
    -- Files members sent, kept in MEDIA_DIR under an unguessable file_name.
    CREATE TABLE media (
        id                INTEGER PRIMARY KEY,
        member_id         INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        submission_id     INTEGER REFERENCES submissions(id) ON DELETE CASCADE,
        part              TEXT,
        kind              TEXT NOT NULL,   -- voice, audio, photo, document, video_note
        file_name         TEXT NOT NULL UNIQUE,
        telegram_file_id  TEXT NOT NULL,
        mime_type         TEXT,
        size              INTEGER,
        duration          INTEGER,
        created_at        TEXT NOT NULL
    );
    CREATE INDEX media_submission ON media (submission_id, part);
    -- Secrets the database keeps for itself (e.g. the key that derives pseudonyms).
    CREATE TABLE app_secrets (
        name   TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    -- Something a member sent suggested a risk to life or safety; a person should follow up.
    CREATE TABLE safeguarding_flags (
        id             INTEGER PRIMARY KEY,
        member_id      INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        submission_id  INTEGER REFERENCES submissions(id) ON DELETE CASCADE,
        part           TEXT,
        flagged_at     TEXT NOT NULL,
        followed_up_at TEXT
    );
    """,
    # 3: delivery: the outbox (one row per recipient per message) and the batches it sends.
    """
    CREATE TABLE delivery_batches (
        id               INTEGER PRIMARY KEY,
        kind             TEXT NOT NULL,    -- broadcast, question, reminder, reply, report
        ref_id           INTEGER,          -- what it delivers (a report: the batch reported on)
        author_chat_id   INTEGER,          -- who gets a delivery report; NULL: nobody
        author_language  TEXT NOT NULL DEFAULT 'en',
        created_at       TEXT NOT NULL,
        finished_at      TEXT,             -- every row reached a final status
        reported_at      TEXT              -- the author's report was queued
    );
    CREATE INDEX delivery_batches_open ON delivery_batches (id) WHERE finished_at IS NULL;
    -- A row is 'sending' from just before the Telegram call until just after it, so a row
    -- found 'sending' at start may have reached the member: it becomes 'unconfirmed' and is
    -- never sent again.
    CREATE TABLE outbox (
        id                    INTEGER PRIMARY KEY,
        batch_id              INTEGER NOT NULL REFERENCES delivery_batches(id) ON DELETE CASCADE,
        member_id             INTEGER REFERENCES members(id) ON DELETE CASCADE,  -- NULL: staff
        chat_id               INTEGER NOT NULL,
        text                  TEXT NOT NULL,
        reply_markup          TEXT,        -- JSON, as the Bot API takes it
        status                TEXT NOT NULL DEFAULT 'queued' CHECK (status IN
                              ('queued', 'sending', 'sent', 'failed', 'skipped', 'unconfirmed')),
        attempts              INTEGER NOT NULL DEFAULT 0,  -- failed tries (not flood waits)
        not_before            TEXT NOT NULL,
        held_for_quiet_hours  INTEGER NOT NULL DEFAULT 0,  -- 1 once quiet hours delayed it
        skip_reason           TEXT,        -- stopped, unreachable
        last_error            TEXT,        -- a short code, never message content
        telegram_message_id   INTEGER,
        created_at            TEXT NOT NULL,
        sent_at               TEXT
    );
    CREATE INDEX outbox_due ON outbox (not_before, chat_id) WHERE status = 'queued';
    CREATE INDEX outbox_batch ON outbox (batch_id, status);
    CREATE INDEX outbox_member ON outbox (member_id);
    """,
    # 4: staff roles and invites; questions, the rounds in which they go out, answers;
    # broadcasts; a facilitator's replies to answers and the member's one answer back.
    """
    CREATE TABLE roles (
        telegram_user_id  INTEGER PRIMARY KEY,
        role              TEXT NOT NULL CHECK (role IN ('organiser', 'facilitator')),
        name              TEXT,            -- their Telegram first name, for /roles
        chat_id           INTEGER,
        granted_at        TEXT NOT NULL,
        granted_by        INTEGER,         -- NULL: ORGANISER_IDS at start
        removed_at        TEXT             -- a removed role keeps its row for the record
    );
    CREATE TABLE invites (
        id          INTEGER PRIMARY KEY,
        token_hash  TEXT NOT NULL UNIQUE,  -- sha256 of the link's token; the token is not kept
        created_by  INTEGER NOT NULL,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        used_at     TEXT,
        used_by     INTEGER
    );
    CREATE TABLE questions (
        id              INTEGER PRIMARY KEY,
        author_id       INTEGER NOT NULL,  -- the facilitator's Telegram id
        author_chat_id  INTEGER NOT NULL,
        author_language TEXT NOT NULL DEFAULT 'en',
        text            TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('open', 'choice', 'scale', 'yesno')),
        options         TEXT NOT NULL DEFAULT '[]',  -- JSON list of labels (choice)
        audience        TEXT NOT NULL,     -- everyone | project:<code> | tag:<word>
        repeat          TEXT NOT NULL DEFAULT 'once' CHECK (repeat IN ('once', 'daily', 'weekly')),
        starts_at       TEXT NOT NULL,     -- the first round, UTC
        reminder_hours  INTEGER,
        status          TEXT NOT NULL DEFAULT 'scheduled'
                        CHECK (status IN ('scheduled', 'cancelled', 'finished')),
        created_at      TEXT NOT NULL
    );
    -- Each time a question goes out; a weekly question has a round a week.
    CREATE TABLE question_rounds (
        id                INTEGER PRIMARY KEY,
        question_id       INTEGER NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
        due_at            TEXT NOT NULL,
        status            TEXT NOT NULL DEFAULT 'due'
                          CHECK (status IN ('due', 'sent', 'missed', 'cancelled')),
        sent_at           TEXT,
        batch_id          INTEGER,
        reminder_due_at   TEXT,
        reminder_sent_at  TEXT,
        closes_at         TEXT,            -- answers are taken (and changed) until then
        UNIQUE (question_id, due_at)
    );
    CREATE INDEX question_rounds_due ON question_rounds (due_at) WHERE status = 'due';
    CREATE TABLE answers (
        id           INTEGER PRIMARY KEY,
        round_id     INTEGER NOT NULL REFERENCES question_rounds(id) ON DELETE CASCADE,
        member_id    INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        choice       TEXT,                 -- option number, scale value, or yes / no
        text         TEXT,                 -- an open answer (or a voice note's caption)
        answered_at  TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        UNIQUE (round_id, member_id)
    );
    ALTER TABLE media ADD COLUMN answer_id INTEGER REFERENCES answers(id) ON DELETE CASCADE;
    ALTER TABLE safeguarding_flags ADD COLUMN answer_id INTEGER
        REFERENCES answers(id) ON DELETE CASCADE;
    CREATE TABLE broadcasts (
        id              INTEGER PRIMARY KEY,
        author_id       INTEGER NOT NULL,
        author_chat_id  INTEGER NOT NULL,
        author_language TEXT NOT NULL DEFAULT 'en',
        text            TEXT NOT NULL,
        audience        TEXT NOT NULL,     -- as questions, or answered:<question id>
        send_at         TEXT NOT NULL,
        status          TEXT NOT NULL DEFAULT 'scheduled'
                        CHECK (status IN ('scheduled', 'sent', 'missed', 'cancelled')),
        batch_id        INTEGER,
        created_at      TEXT NOT NULL,
        sent_at         TEXT
    );
    CREATE TABLE replies (
        id                 INTEGER PRIMARY KEY,
        answer_id          INTEGER NOT NULL REFERENCES answers(id) ON DELETE CASCADE,
        staff_id           INTEGER NOT NULL,
        staff_chat_id      INTEGER NOT NULL,
        text               TEXT NOT NULL,
        sent_at            TEXT NOT NULL,
        member_text        TEXT,           -- the member may answer back once
        member_replied_at  TEXT
    );
    """,
    # 5: indexes for exports and retention. A response's files, flags and replies are found
    # without scanning those tables, and deleting a response (retention) finds its children
    # the same way: SQLite scans a child table once per deleted row when it has no index.
    """
    CREATE INDEX media_answer ON media (answer_id);
    CREATE INDEX safeguarding_flags_submission ON safeguarding_flags (submission_id);
    CREATE INDEX safeguarding_flags_answer ON safeguarding_flags (answer_id);
    CREATE INDEX replies_answer ON replies (answer_id);
    """,
    # 5: one state machine: where each person is in a flow, and their draft, in one table
    # read per update (replaces ptb's conversations and user_data tables). The old rows come
    # across: user_data as the draft, and the onboarding step by its name.
    """
    CREATE TABLE sessions (
        user_id         INTEGER PRIMARY KEY,
        flow            TEXT,
        state           TEXT,
        data            TEXT NOT NULL DEFAULT '{}',
        last_update_id  INTEGER NOT NULL DEFAULT 0,
        updated_at      TEXT
    );
    INSERT INTO sessions (user_id, data)
        SELECT user_id, data FROM user_data WHERE json_valid(data);
    INSERT INTO sessions (user_id) SELECT DISTINCT json_extract(key, '$[1]') FROM conversations
        WHERE json_extract(key, '$[1]') NOT IN (SELECT user_id FROM sessions);
    UPDATE sessions SET
        flow = (SELECT c.name FROM conversations c
                WHERE json_extract(c.key, '$[1]') = sessions.user_id LIMIT 1),
        state = (SELECT CASE c.name WHEN 'onboarding' THEN
                    CASE c.state WHEN '1' THEN 'LANGUAGE' WHEN '2' THEN 'CONSENT'
                        WHEN '3' THEN 'NAMING' WHEN '4' THEN 'AGE' WHEN '5' THEN 'AREA'
                        ELSE 'EXTRA' END
                    ELSE NULL END
                 FROM conversations c WHERE json_extract(c.key, '$[1]') = sessions.user_id
                 LIMIT 1);
    UPDATE sessions SET flow = NULL WHERE state IS NULL;
    DROP TABLE conversations;
    DROP TABLE user_data;
    -- Risky words are checked at the door, wherever they are written (at the menu too), so a
    -- flag keeps the words themselves and where they were written.
    ALTER TABLE safeguarding_flags ADD COLUMN words TEXT;
    ALTER TABLE safeguarding_flags ADD COLUMN place TEXT;
    """,
    # 6: data rights. An outbox row that carries a member's words to someone else (their
    # answer back, queued to staff) names that member, so erasure finds it. Retention wipes
    # the text of old final rows: the partial index finds those not wiped yet. Pseudonyms
    # are stored, one name per member, never reused: an erased member's row is unlinked and
    # kept, so no later member is given a name an earlier export showed. Members who joined
    # before this migration keep the name they were shown (see storage/sharing.py), unless
    # another member holds it.
    """
    ALTER TABLE outbox ADD COLUMN words_of INTEGER REFERENCES members(id) ON DELETE CASCADE;
    CREATE INDEX outbox_words_of ON outbox (words_of) WHERE words_of IS NOT NULL;
    CREATE INDEX outbox_text_kept ON outbox (created_at) WHERE text != '';
    CREATE TABLE pseudonyms (
        name       TEXT PRIMARY KEY,
        member_id  INTEGER UNIQUE REFERENCES members(id) ON DELETE SET NULL
    );
    -- Members who may have been shown a name already: a placeholder, replaced by that name
    -- the first time it is asked for.
    INSERT INTO pseudonyms (name, member_id) SELECT 'legacy:' || id, id FROM members
        WHERE EXISTS (SELECT 1 FROM app_secrets WHERE name = 'pseudonym_key');
    """,
    # 7: the kinds of sharing are one list in code (storage/kinds.py): submissions.kind loses
    # its CHECK, so a new kind needs no table rebuild. SQLite cannot drop a CHECK, so the table
    # is rebuilt its documented way (foreign keys are off while migrations run, see `migrate`):
    # create the new table, copy, drop the old, rename, recreate its index.
    """
    CREATE TABLE submissions_new (
        id            INTEGER PRIMARY KEY,
        member_id     INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        kind          TEXT NOT NULL,     -- a key in storage/kinds.py, checked there
        project_id    INTEGER REFERENCES projects(id) ON DELETE SET NULL,
        status        TEXT NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'submitted', 'cancelled')),
        language      TEXT NOT NULL,
        volunteer     TEXT CHECK (volunteer IN ('yes', 'maybe', 'no')),
        step          TEXT,
        reviewed      INTEGER NOT NULL DEFAULT 0,
        created_at    TEXT NOT NULL,
        submitted_at  TEXT
    );
    INSERT INTO submissions_new (id, member_id, kind, project_id, status, language, volunteer,
                                 step, reviewed, created_at, submitted_at)
        SELECT id, member_id, kind, project_id, status, language, volunteer,
               step, reviewed, created_at, submitted_at FROM submissions;
    DROP TABLE submissions;
    ALTER TABLE submissions_new RENAME TO submissions;
    CREATE INDEX submissions_member ON submissions (member_id, status);
    """,
    # Indexes for a large membership (bench/scale.py: 100,000 members, a million
    # responses). /stats asks of each member whether they answered a question: without
    # answers_member that is a scan of every answer (or a sort of them all), and so is each
    # member's erasure (ON DELETE CASCADE). about_you_field holds each "about you" question's
    # answers in order without case, with the member: /stats groups them without a sort and
    # without reading the table (EXPLAIN QUERY PLAN: "SEARCH ay USING COVERING INDEX
    # about_you_field (field=?)", and no "USE TEMP B-TREE FOR GROUP BY").
    """
    CREATE INDEX answers_member ON answers (member_id);
    CREATE INDEX about_you_field ON about_you (field, lower(answer), member_id, answer);
    """,
    # A member's consent receipts and files, found without reading every row: /mydata, a
    # consent check, and erasure (which unlinks the receipts, ON DELETE SET NULL, and
    # deletes the files' rows) each look them up by member.
    """
    CREATE INDEX consent_receipts_member ON consent_receipts (member_id);
    CREATE INDEX media_member ON media (member_id);
    """,
    # Ideas members weigh, and what became of ideas and question rounds (issue 12).
    # statements: what other members may be shown and vote on. A member's idea has one only
    # if its author chose to share it (anonymous, or with their first name); it is shown only
    # once a facilitator approved it, perhaps edited (text). A voice idea's statement is a
    # facilitator's summary, shown once its author approved it (state 'summary' until then).
    # A facilitator's own statement has no submission. votes counts agree, disagree and not
    # sure (not skips), kept by the triggers below, so "fewest votes first" reads one index.
    # votes: one per member per statement; 'skip' marks it seen without a view.
    # status_changes: every change of what became of an idea (a submission of kind idea, or a
    # facilitator's statement) or of a question round, oldest first: the latest is its
    # status. reason is public (required for 'not_possible', checked in code).
    """
    CREATE TABLE statements (
        id             INTEGER PRIMARY KEY,
        project_id     INTEGER REFERENCES projects(id) ON DELETE CASCADE,
        submission_id  INTEGER UNIQUE REFERENCES submissions(id) ON DELETE CASCADE,
        visibility     TEXT NOT NULL CHECK (visibility IN ('anonymous', 'named', 'team')),
        state          TEXT NOT NULL DEFAULT 'waiting'
                       CHECK (state IN ('waiting', 'summary', 'approved', 'declined')),
        text           TEXT,
        edited         INTEGER NOT NULL DEFAULT 0,
        decided_by     INTEGER,            -- the facilitator's Telegram id
        decided_at     TEXT,
        created_by     INTEGER,            -- a facilitator's statement: their Telegram id
        created_at     TEXT NOT NULL,
        votes          INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX statements_next ON statements (project_id, state, votes, id);
    CREATE INDEX statements_state ON statements (state, id);
    CREATE TABLE votes (
        member_id     INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        statement_id  INTEGER NOT NULL REFERENCES statements(id) ON DELETE CASCADE,
        choice        TEXT NOT NULL CHECK (choice IN ('agree', 'disagree', 'unsure', 'skip')),
        voted_at      TEXT NOT NULL,
        changed_at    TEXT,
        PRIMARY KEY (member_id, statement_id)
    ) WITHOUT ROWID;
    CREATE INDEX votes_statement ON votes (statement_id, choice, member_id);
    CREATE TRIGGER votes_counted AFTER INSERT ON votes WHEN NEW.choice != 'skip'
    BEGIN
        UPDATE statements SET votes = votes + 1 WHERE id = NEW.statement_id;
    END;
    CREATE TRIGGER votes_uncounted AFTER DELETE ON votes WHEN OLD.choice != 'skip'
    BEGIN
        UPDATE statements SET votes = votes - 1 WHERE id = OLD.statement_id;
    END;
    CREATE TRIGGER votes_recounted AFTER UPDATE OF choice ON votes
        WHEN (OLD.choice = 'skip') != (NEW.choice = 'skip')
    BEGIN
        UPDATE statements SET votes = votes + (CASE WHEN NEW.choice = 'skip' THEN -1 ELSE 1 END)
        WHERE id = NEW.statement_id;
    END;
    CREATE TABLE status_changes (
        id             INTEGER PRIMARY KEY,
        submission_id  INTEGER REFERENCES submissions(id) ON DELETE CASCADE,
        statement_id   INTEGER REFERENCES statements(id) ON DELETE CASCADE,
        round_id       INTEGER REFERENCES question_rounds(id) ON DELETE CASCADE,
        status         TEXT NOT NULL
                       CHECK (status IN ('new', 'looking', 'going_ahead', 'done', 'not_possible')),
        reason         TEXT,
        changed_by     INTEGER NOT NULL,   -- the facilitator's Telegram id
        changed_at     TEXT NOT NULL,
        CHECK ((submission_id IS NOT NULL) + (statement_id IS NOT NULL)
               + (round_id IS NOT NULL) = 1)
    );
    CREATE INDEX status_changes_submission ON status_changes (submission_id, id)
        WHERE submission_id IS NOT NULL;
    CREATE INDEX status_changes_statement ON status_changes (statement_id, id)
        WHERE statement_id IS NOT NULL;
    CREATE INDEX status_changes_round ON status_changes (round_id, id)
        WHERE round_id IS NOT NULL;
    CREATE INDEX status_changes_at ON status_changes (changed_at);
    """,
    # The staff workbench (storage/workbench_access.py): one-time sign-in links sent by
    # /workbench, and the browser sessions they open. Only hashes of their tokens are kept.
    """
    CREATE TABLE web_links (
        id                INTEGER PRIMARY KEY,
        token_hash        TEXT NOT NULL UNIQUE,
        telegram_user_id  INTEGER NOT NULL,
        created_at        TEXT NOT NULL,
        expires_at        TEXT NOT NULL,
        used_at           TEXT
    );
    CREATE TABLE web_sessions (
        id                INTEGER PRIMARY KEY,
        token_hash        TEXT NOT NULL UNIQUE,
        telegram_user_id  INTEGER NOT NULL,
        link_id           INTEGER REFERENCES web_links(id) ON DELETE SET NULL,
        started_at        TEXT NOT NULL,
        seen_at           TEXT NOT NULL,
        ended_at          TEXT
    );
    CREATE INDEX web_sessions_user ON web_sessions (telegram_user_id) WHERE ended_at IS NULL;
    """,
    # The outbox's next rows to send (Outbox.due), found without reading every queued row: in
    # id order through the queued rows (outbox_queued), each checked against its chat's
    # earlier queued rows (outbox_queued_chat). With a broadcast to 100,000 queued, a pass
    # grouped them all (75 ms a pass of 100); now it reads about as many rows as it returns.
    """
    CREATE INDEX outbox_queued ON outbox (id, not_before) WHERE status = 'queued';
    CREATE INDEX outbox_queued_chat ON outbox (chat_id, id, not_before) WHERE status = 'queued';
    """,
    # The workbench's safeguarding queue (storage/safeguarding.py): who dealt with a flag
    # (a staff member's Telegram id), beside when (followed_up_at). Waiting flags are found
    # oldest first.
    """
    ALTER TABLE safeguarding_flags ADD COLUMN followed_up_by INTEGER;
    CREATE INDEX safeguarding_flags_waiting ON safeguarding_flags (flagged_at)
        WHERE followed_up_at IS NULL;
    """,
    # Themes (storage/themes.py): names staff give to what members said, and which story,
    # idea or answer has which. A tag goes with its item (erasure, retention: ON DELETE
    # CASCADE) and with its theme. An item has a theme once (the unique indexes, which also
    # find an item's themes, and so its tags when it is deleted).
    """
    CREATE TABLE themes (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created_by  INTEGER NOT NULL,      -- the staff member's Telegram id
        created_at  TEXT NOT NULL
    );
    CREATE TABLE item_themes (
        id             INTEGER PRIMARY KEY,
        theme_id       INTEGER NOT NULL REFERENCES themes(id) ON DELETE CASCADE,
        submission_id  INTEGER REFERENCES submissions(id) ON DELETE CASCADE,
        answer_id      INTEGER REFERENCES answers(id) ON DELETE CASCADE,
        tagged_by      INTEGER NOT NULL,   -- the staff member's Telegram id
        tagged_at      TEXT NOT NULL,
        CHECK ((submission_id IS NOT NULL) + (answer_id IS NOT NULL) = 1)
    );
    CREATE UNIQUE INDEX item_themes_submission ON item_themes (submission_id, theme_id);
    CREATE UNIQUE INDEX item_themes_answer ON item_themes (answer_id, theme_id);
    CREATE INDEX item_themes_theme ON item_themes (theme_id);
    """,
    # The workbench's reader (storage/search.py): full-text search over what members shared,
    # one row per saved story or idea (rowid = submissions.id, which never changes), holding
    # the text of all its parts. Triggers keep it in step: a story or idea is indexed when it
    # is saved (its parts are final then; a draft is never indexed), and leaves the index
    # when it is deleted (discarded, erased with its member by cascade, or by retention).
    # The triggers are on submissions, not submission_parts: a table with triggers makes
    # every write to it forget what the update had read (storage/db.py `_forget`), and parts
    # are written at every step of a story, submissions once or twice a story.
    # unicode61 folds case and, with remove_diacritics 2, accents: "ŵ" matches "w", "dŵr"
    # matches "dwr". No stemmer: porter is English only, and would mangle Welsh words.
    # submissions_submitted lists what was shared, newest first, without a sort;
    # answers_round_choice counts a round's answers per option from the index alone (the
    # Questions page, storage/round_figures.py).
    """
    CREATE VIRTUAL TABLE submission_search USING fts5(
        text, tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER submission_search_saved AFTER UPDATE OF status ON submissions
    BEGIN
        DELETE FROM submission_search WHERE rowid = OLD.id;
        INSERT INTO submission_search (rowid, text)
            SELECT submission_id, group_concat(text, char(10)) FROM submission_parts
            WHERE submission_id = NEW.id AND NEW.status = 'submitted' AND text IS NOT NULL
            GROUP BY submission_id;
    END;
    CREATE TRIGGER submission_search_gone AFTER DELETE ON submissions
    BEGIN
        DELETE FROM submission_search WHERE rowid = OLD.id;
    END;
    INSERT INTO submission_search (rowid, text)
        SELECT p.submission_id, group_concat(p.text, char(10)) FROM submission_parts p
        JOIN submissions s ON s.id = p.submission_id
        WHERE s.status = 'submitted' AND p.text IS NOT NULL GROUP BY p.submission_id;
    CREATE INDEX submissions_submitted ON submissions (status, submitted_at, id);
    CREATE INDEX answers_round_choice ON answers (round_id, choice);
    """,
    # Several processes on one database (issue 14; PostgreSQL's schema has the same): whose
    # update each inbox row is (a person's older updates are handled before theirs, in
    # order), and the process that took an inbox row or an outbox row it is sending (when
    # that process is gone, what it took is known to be orphaned).
    """
    ALTER TABLE inbox ADD COLUMN person_id INTEGER;
    ALTER TABLE inbox ADD COLUMN taken_by INTEGER;
    CREATE INDEX inbox_person_pending ON inbox (person_id, update_id) WHERE done_at IS NULL;
    ALTER TABLE outbox ADD COLUMN claimed_by INTEGER;
    """,
    # SMS (issue 15): members who text a number. sms_numbers: one row per phone number, the
    # number sealed (bot/sms.py: a dump does not show it) and found by a keyed hash; its
    # member's chat id (and user id) is SMS_BASE + id (bot/channels.py), never reused
    # (AUTOINCREMENT). stopped_at: the number texted STOP (nothing is sent to it but the one
    # reply, until START); asked: what its last text asked (its buttons), so an edit that asks
    # nothing new is not sent. sms_inbound: each text received, by the provider's MessageSid;
    # its update id is SMS_BASE + id (a retried post is the same update). sms_messages: each
    # text sent: the provider's sid, the outbox row it came from, its segments and its status
    # (sending, queued, sent, delivered, undelivered, failed), from the status callbacks.
    """
    CREATE TABLE sms_numbers (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        number_hash  TEXT NOT NULL UNIQUE,
        sealed       TEXT NOT NULL,
        stopped_at   TEXT,
        asked        TEXT,
        created_at   TEXT NOT NULL
    );
    CREATE TABLE sms_inbound (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        message_sid  TEXT NOT NULL UNIQUE,
        chat_id      INTEGER NOT NULL,
        received_at  TEXT NOT NULL
    );
    CREATE INDEX sms_inbound_chat ON sms_inbound (chat_id);
    CREATE TABLE sms_messages (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        sid          TEXT UNIQUE,
        chat_id      INTEGER NOT NULL,
        outbox_id    INTEGER,
        segments     INTEGER NOT NULL,
        status       TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX sms_messages_chat ON sms_messages (chat_id);
    CREATE INDEX sms_messages_outbox ON sms_messages (outbox_id) WHERE outbox_id IS NOT NULL;
    """,
)


async def schema_version(db: aiosqlite.Connection) -> int:
    """Returns the schema version the database is at."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection) -> int:
    """Applies every migration the database has not seen yet; returns the new version."""
    current = await schema_version(db)
    if current >= len(MIGRATIONS):
        return current
    # Foreign keys are off while the schema changes (a table rebuilt must not cascade its
    # DROP to the rows that point at it), and checked before each migration commits (SQLite,
    # "Making Other Kinds Of Table Schema Changes"). The pragma is a no-op inside a transaction.
    async with db.execute("PRAGMA foreign_keys") as cursor:
        row = await cursor.fetchone()
    enforced = bool(row and row[0])
    await db.execute("PRAGMA foreign_keys = OFF")
    try:
        for version, sql in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            # executescript commits first, so wrap the migration and its version in one
            # transaction, committed only if no row points at a row that is not there.
            await db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};")
            async with db.execute("PRAGMA foreign_key_check") as cursor:
                broken = await cursor.fetchall()
            if broken:
                await db.execute("ROLLBACK")
                raise RuntimeError(f"migration {version} leaves rows with no parent: {broken}")
            await db.execute("COMMIT")
            current = version
    finally:
        if enforced:
            await db.execute("PRAGMA foreign_keys = ON")
    return current
