// A chat backend in the shape uniqwatch watches: one chat per set of
// participants, enforced by a unique sparse index on participantsKey, an
// atomic findOneAndUpdate upsert, and a retry that re-reads the winner on
// E11000. One code path has the bug the canonical checks exist for: it
// builds the key in the order the client sent the participants.
//
// Usage: node app.js URI DATABASE
// Prints one JSON line: the pairs that ended up with two chats (by their
// canonical key) and the number of chats stored with a wrong key.
'use strict';
const mongoose = require('mongoose');

const chatSchema = new mongoose.Schema({
  participants: { type: [String], required: true },
  participantsKey: { type: String },
  createdAt: { type: Date, default: Date.now },
});
chatSchema.index({ participantsKey: 1 }, { unique: true, sparse: true });
const Chat = mongoose.model('Chat', chatSchema, 'chats');

// What the application means: participants.map(String).sort().join('_').
const sortedKey = (participants) => participants.map(String).sort().join('_');
// The bug: the order the request came in.
const unsortedKey = (participants) => participants.map(String).join('_');

async function createOrGet(participants, keyOf) {
  const participantsKey = keyOf(participants);
  try {
    return await Chat.findOneAndUpdate(
      { participantsKey },
      { $setOnInsert: { participants, participantsKey } },
      { upsert: true, new: true },
    );
  } catch (e) {
    if (e && e.code === 11000) return Chat.findOne({ participantsKey });
    throw e;
  }
}

async function main() {
  const [uri, dbName] = process.argv.slice(2);
  await mongoose.connect(uri, { dbName, serverSelectionTimeoutMS: 10000 });
  await Chat.syncIndexes();

  // The right path, with racing requests for the same pair: one chat each.
  const pairs = [];
  for (let i = 0; i < 30; i++) pairs.push([`u${i}`, `u${i + 1}`]);
  for (const pair of pairs) {
    await Promise.all([createOrGet(pair, sortedKey), createOrGet([...pair].reverse(), sortedKey), createOrGet(pair, sortedKey)]);
  }

  // The buggy path, on every third existing pair in both orders, and on new pairs.
  const duplicated = new Set();
  let wrongKeys = 0;
  for (let i = 0; i < pairs.length; i += 3) {
    for (const order of [pairs[i], [...pairs[i]].reverse()]) {
      const before = await Chat.countDocuments({ participantsKey: unsortedKey(order) });
      await createOrGet(order, unsortedKey);
      if (unsortedKey(order) !== sortedKey(order)) {
        duplicated.add(sortedKey(order));
        if (before === 0) wrongKeys += 1;
      }
    }
  }
  for (let i = 0; i < 5; i++) {
    const order = [`w${i}`, `v${i}`];
    await createOrGet(order, unsortedKey);
    wrongKeys += 1;
  }
  const chats = await Chat.countDocuments({});
  console.log(JSON.stringify({ duplicated: [...duplicated].sort(), wrongKeys, chats }));
  await mongoose.disconnect();
}

main().catch((e) => {
  console.error(`app failed: ${e && e.message}`);
  process.exit(1);
});
