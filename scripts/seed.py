#!/usr/bin/env python3
"""Seeds a MongoDB server with chat-backend-shaped data for the demo and the benchmark.

app.chats: COUNT chats {participants, participantsKey, createdAt}, keyed by the
sorted participant ids joined with "_", plus a few duplicated keys and a few
documents whose key is absent, null or empty. Without --unique-index the
collection has no unique index (as after an accidental drop); with it, the
duplicates are left out and the unique sparse index is created.
app.users: a healthy collection with a plain unique index on email.

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
p.add_argument("--drop", action="store_true", help="drop the collections first")
args = p.parse_args()

rng = random.Random(42)
db = MongoClient(args.uri)[args.db]
if args.drop:
    db.chats.drop()
    db.users.drop()

start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
seen = set()
batch = []


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


while len(seen) < args.count:
    a, b = f"user{rng.randrange(10 * args.count):07d}", f"user{rng.randrange(10 * args.count):07d}"
    key = "_".join(sorted([a, b]))
    if a == b or key in seen:
        continue
    seen.add(key)
    batch.append(chat(a, b))
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
flush(force=True)

if args.unique_index:
    db.chats.create_index("participantsKey", unique=True, sparse=True, name="participantsKey_1")

users = [{"email": f"user{i:07d}@example.com", "name": f"User {i}"} for i in range(args.users)]
if users:
    db.users.insert_many(users)
db.users.create_index("email", unique=True, name="email_1")
print(f"seeded {db.chats.estimated_document_count()} chats and {db.users.estimated_document_count()} users in {args.db}")
