/**
 * The built-in deny rules as a table: for each rule, argvs it must refuse
 * (text and canonical forms, as exec/canonical.ts builds them) and near misses
 * it must let through. Deleting any one rule fails its own rows.
 */
import { describe, expect, it } from 'vitest';
import { BUILTIN_DENY, deniedBy } from '../../src/core/deny.js';

const RM = 'recursive delete of /';
const MKFS = 'making a filesystem';
const BLOCK = 'writing to a block device';
const BOMB = 'a fork bomb';
const SHADOW = 'reading the password hashes';
const CHMOD = 'recursive chmod or chown of /';

/** [rule, argv, canonical forms]: the argv must be refused by exactly that rule. */
const DENIED: [string, string[], string[][]][] = [
  [RM, ['rm', '-rf', '/'], []],
  [RM, ['/bin/rm', '--recursive', '/*'], []],
  [RM, ['rm', '-r', '--no-preserve-root', '/srv'], []],
  [RM, ['rm', '-rf', '//'], [['rm', '-rf', '/']]],
  [RM, ['rm', '-rf', '/tmp/..'], [['rm', '-rf', '/']]],
  [MKFS, ['mkfs.ext4', '/dev/sdb1'], []],
  [MKFS, ['/sbin/wipefs', '-a', 'x'], []],
  [MKFS, ['format-disk', '/dev/sdb1'], [['/usr/sbin/mkfs.ext4', '/dev/sdb1']]],
  [BLOCK, ['dd', 'if=/dev/zero', 'of=/dev/sda'], []],
  [BLOCK, ['dd', 'of=/dev/mapper/root'], []],
  [BLOCK, ['dd', 'of=/dev/disk/by-uuid/1234'], []],
  [BLOCK, ['dd', 'of=/dev/loop0'], []],
  [BLOCK, ['dd', 'of=/dev//sda'], [['dd', 'of=/dev/sda']]],
  [BLOCK, ['dd', 'of=/tmp/looks-like-a-file'], [['dd', 'of=/dev/block/8:0']]],
  [BLOCK, ['shred', '/srv/disk'], [['shred', '/dev/block/254:0']]],
  [BLOCK, ['fdisk', '/dev/nvme0n1'], []],
  [BOMB, ['bash', '-c', ':(){ :|:& };:'], []],
  [SHADOW, ['cat', '/etc/shadow'], []],
  [SHADOW, ['cat', '/etc/gshadow'], []],
  [SHADOW, ['cat', '/etc//shadow'], [['cat', '/etc/shadow']]],
  [SHADOW, ['cat', '/etc/./shadow'], [['cat', '/etc/shadow']]],
  [SHADOW, ['tail', '/srv/logs/innocent.log'], [['tail', '/etc/shadow']]],
  [SHADOW, ['grep', 'root', '--file=/etc/shadow'], []],
  [CHMOD, ['chmod', '-R', '777', '/'], []],
  [CHMOD, ['chown', '--recursive', 'nobody', '/'], []],
  [CHMOD, ['chmod', '-R', '777', '//'], [['chmod', '-R', '777', '/']]],
  [CHMOD, ['chgrp', '-R', 'x', '/etc/..'], [['chgrp', '-R', 'x', '/']]],
];

/** Near misses: each looks like a rule's case, and is allowed (with its canonical forms). */
const ALLOWED: [string, string[], string[][]][] = [
  [RM, ['rm', '-rf', '/tmp/build'], [['rm', '-rf', '/tmp/build']]],
  [RM, ['rm', '/'], [['rm', '/']]],
  [RM, ['rm', '-rf', '/srv/..x'], [['rm', '-rf', '/srv/..x']]],
  [MKFS, ['mkfsinfo', '/dev/sda'], []],
  [MKFS, ['echo', 'mkfs.ext4'], []],
  [BLOCK, ['dd', 'if=/dev/sda', 'of=/tmp/disk.img'], [['dd', 'if=/dev/block/8:0', 'of=/tmp/disk.img']]],
  [BLOCK, ['dd', 'of=/srv/backup.img'], [['dd', 'of=/srv/backup.img']]],
  [BLOCK, ['shred', '/tmp/secret.txt'], [['shred', '/tmp/secret.txt']]],
  [BLOCK, ['cat', '/dev/sda'], [['cat', '/dev/block/8:0']]],
  [BOMB, ['echo', ':()'], []],
  [SHADOW, ['cat', '/etc/passwd'], [['cat', '/etc/passwd']]],
  [SHADOW, ['cat', '/etc/shadowsocks.json'], [['cat', '/etc/shadowsocks.json']]],
  [CHMOD, ['chmod', '777', '/'], [['chmod', '777', '/']]],
  [CHMOD, ['chmod', '-R', '777', '/srv/www'], [['chmod', '-R', '777', '/srv/www']]],
  [CHMOD, ['chmod', '-R', '777', '/srv/www/..'], [['chmod', '-R', '777', '/srv']]],
];

describe('the built-in deny-list', () => {
  it('has exactly the rules this table covers', () => {
    expect(BUILTIN_DENY.map((r) => r.name).sort()).toEqual([RM, MKFS, BLOCK, BOMB, SHADOW, CHMOD].sort());
  });

  it.each(DENIED)('%s: refuses %j (canonical %j)', (rule, argv, canonical) => {
    expect(deniedBy(argv, [], canonical)).toBe(rule);
  });

  it.each(ALLOWED)('%s near miss: allows %j (canonical %j)', (_rule, argv, canonical) => {
    expect(deniedBy(argv, [], canonical)).toBeUndefined();
  });

  it('checks security.deny patterns against the canonical forms too', () => {
    const deny = ['^cat /etc/hosts$'];
    expect(deniedBy(['cat', '/etc//hosts'], deny)).toBeUndefined();
    expect(deniedBy(['cat', '/etc//hosts'], deny, [['cat', '/etc/hosts']])).toBe(
      'security.deny pattern ^cat /etc/hosts$',
    );
  });
});
