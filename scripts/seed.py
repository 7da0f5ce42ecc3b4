#!/usr/bin/env python3
"""Seeds a MongoDB server with chat-backend-shaped data for the demo and the benchmark.

app.chats: COUNT chats {participants, participantsKey, createdAt}, keyed by the
sorted participant ids joined with "_", plus a few duplicated keys and a few
documents whose key is absent, null or empty. Without --unique-index the
collection has no unique index (as after an accidental drop); with it, the
duplicates are left out and the unique sparse index is created.
app.users: a healthy collection with a plain unique index on email.

The invariant behind the key ([target.canonical]) can be broken too, always
without two documents sharing a stored key, so a unique index stays healthy:
--examples adds the issue's named cases, --breakage SHARE breaks that share of
the chats in each of four ways (legacy keyless twin, unsorted-key twin, another
separator, drifted participants), for the benchmark.

Deterministic: the same arguments give the same documents.
"""
import argparse
import datetime
import random

from pymongo import MongoClient

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--uri", default="mongodb://127.0.0.1:27117/")
p.add_argument("--db", default="app")
p.add_argument("--count", type=int, default=10_000, help="chats to insert")
p.add_argument("--users", type=int, default=2_000, help="users to insert")
p.add_argument("--duplicates", type=int, default=6, help="keys given extra documents")
p.add_argument("--unique-index", action="store_true", help="create the unique sparse index (no duplicates)")
p.add_argument("--examples", action="store_true",
               help="add the issue's named breakages of the canonical key: chats a/b (a keyless twin), "
                    "c/d (a twin keyed d_c), e/f keyed e-f, a/g keyed a_c; users ann@x.org and 'Ann@X.org '")
p.add_argument("--breakage", type=float, default=0.0, metavar="SHARE",
               help="share of the chats broken in each of four ways (0 to 0.2; 0.01 breaks 1%% per way)")
p.add_argument("--drop", action="store_true", help="drop the collections first")
args = p.parse_args()
if not 0 <= args.breakage <= 0.2:
    p.error("--breakage: expected a share from 0 to 0.2")

rng = random.Random(42)
db = MongoClient(args.uri)[args.db]
if args.drop:
    db.chats.drop()
    db.users.drop()

start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
seen = set()
batch = []
# Every `every`-th chat starts a run of four broken ones, one per way.
every = round(1 / args.breakage) if args.breakage else 0


def flush(force=False):
    global batch
    if batch and (force or len(batch) >= 5000):
        db.chats.insert_many(batch, ordered=False)
        batch = []


def chat(a, b, key="__derive__"):
    doc = {"participants": [a, b], "createdAt": start + datetime.timedelta(seconds=rng.randrange(300 * 86400))}
    if key == "__derive__":
        key = "_".join(sorted([a, b]))
    if key is not ...:
        doc["participantsKey"] = key
    return doc


def broken(n, a, b):
    """The n-th chat, broken in way n % every (1 to 4) or left intact.
    Stored keys stay distinct: "user…" ids joined in descending order or
    with "-" are never a sorted "_" join, and a drifted chat keeps its key."""
    lo, hi = sorted([a, b])
    way = n % every if every else 0
    if way == 1:  # legacy: a keyless twin of the chat (derivable + canonical duplicate)
        return [chat(a, b), chat(hi, lo, key=...)]
    if way == 2:  # wrong derivation: a twin keyed in array order, unsorted (mismatch + duplicate)
        return [chat(a, b), chat(hi, lo, key=f"{hi}_{lo}")]
    if way == 3:  # wrong derivation: another separator (mismatch)
        return [chat(a, b, key=f"{lo}-{hi}")]
    if way == 4:  # drift: a participant changed, the key did not (mismatch)
        return [chat(a, f"drift{n:07d}", key=f"{lo}_{hi}")]
    return [chat(a, b)]


while len(seen) < args.count:
    a, b = f"user{rng.randrange(10 * args.count):07d}", f"user{rng.randrange(10 * args.count):07d}"
    key = "_".join(sorted([a, b]))
    if a == b or key in seen:
        continue
    batch.extend(broken(len(seen), a, b))
    seen.add(key)
    flush()

if not args.unique_index:
    # The race the upsert should have prevented: the same pair created twice (or three times).
    for i, key in enumerate(sorted(seen)[: args.duplicates]):
        a, b = key.split("_")
        for _ in range(1 + (i % 2)):
            batch.append(chat(b, a))
# Documents written by an old code path: no key, an explicit null, an empty key.
for _ in range(7):
    batch.append(chat("legacyA", "legacyB", key=...))
batch.append(chat("nullA", "nullB", key=None))
batch.append(chat("emptyA", "emptyB", key=""))
if args.examples:
    batch += [
        chat("a", "b", key=...),         # 1. legacy keyless, next to ...
        chat("b", "a", key="a_b"),       #    ... the keyed chat of the same pair
        chat("c", "d", key="d_c"),       # 2. unsorted key, next to ...
        chat("c", "d", key="c_d"),       #    ... the correct one
        chat("e", "f", key="e-f"),       #    another separator
        chat("a", "g", key="a_c"),       # 3. drift: participants changed, key did not
    ]
flush(force=True)

if args.unique_index:
    db.chats.create_index("participantsKey", unique=True, sparse=True, name="participantsKey_1")

users = [{"email": f"user{i:07d}@example.com", "name": f"User {i}"} for i in range(args.users)]
if args.examples:
    # 4. unique, but case- and space-sensitive: one person, two accounts.
    users += [{"email": "ann@x.org", "name": "Ann"}, {"email": "Ann@X.org ", "name": "Ann (signed up again)"}]
if users:
    db.users.insert_many(users)
db.users.create_index("email", unique=True, name="email_1")
print(f"seeded {db.chats.estimated_document_count()} chats and {db.users.estimated_document_count()} users in {args.db}")
