// Unit tests of limits.js: one set of defaults, the server's channel info wins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, limitsOf } from '../src/limits.js';
import { review } from '../src/files.js';

test('without channel info the defaults apply', () => {
  assert.deepEqual(limitsOf(null), DEFAULT_LIMITS);
  assert.deepEqual(limitsOf({}), DEFAULT_LIMITS);
  assert.deepEqual(DEFAULT_LIMITS, { max_message_chars: 4000, max_name_chars: 100, max_email_chars: 254, max_file_bytes: 5242880, max_files_per_batch: 5 });
});

test("the channel's limits override the defaults one by one; bad values keep the default", () => {
  const l = limitsOf({ limits: { max_message_chars: 500, max_file_bytes: 1024, max_files_per_batch: 0, max_name_chars: 'x' } });
  assert.deepEqual(l, { max_message_chars: 500, max_name_chars: 100, max_email_chars: 254, max_file_bytes: 1024, max_files_per_batch: 5 });
});

test('the file review uses the merged limits', () => {
  const f = (name, size) => ({ name, size });
  const r = review(0, [f('a', 1024), f('b', 1025)], limitsOf({ limits: { max_file_bytes: 1024 } }));
  assert.deepEqual(r.add.map((x) => x.name), ['a']);
  assert.equal(r.maxBytes, 1024);
  assert.equal(review(0, [1, 2, 3].map((i) => f('f' + i, 1)), limitsOf({ limits: { max_files_per_batch: 2 } })).tooMany, 2);
});
