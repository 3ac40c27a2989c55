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
  [MKFS, ['mkfs', '-t', 'xfs', '/dev/sdb1'], []],
  [MKFS, ['/sbin/mke2fs', '/dev/sdb1'], []],
  [MKFS, ['mkfs.vfat', 'image.bin'], []],
  [BLOCK, ['dd', 'if=/dev/zero', 'of=/dev/sda'], []],
  [BLOCK, ['dd', 'of=/dev/mapper/root'], []],
  [BLOCK, ['dd', 'of=/dev/disk/by-uuid/1234'], []],
  [BLOCK, ['dd', 'of=/dev/loop0'], []],
  [BLOCK, ['dd', 'of=/dev//sda'], [['dd', 'of=/dev/sda']]],
  [BLOCK, ['dd', 'of=/tmp/looks-like-a-file'], [['dd', 'of=/dev/block/8:0']]],
  [BLOCK, ['shred', '/srv/disk'], [['shred', '/dev/block/254:0']]],
  [BLOCK, ['fdisk', '/dev/nvme0n1'], []],
  // Every device family by name (where the node does not exist here), and every tool the rule names.
  ...[
    'sdb',
    'hda',
    'vda1',
    'xvdf',
    'nvme1n1p2',
    'mmcblk0p1',
    'md127',
    'dm-3',
    'loop7',
    'nbd0',
    'zram0',
    'disk/by-id/ata-x',
    'mapper/vg-data',
    'block/8:16',
  ].map((dev): [string, string[], string[][]] => [BLOCK, ['dd', 'bs=4M', `of=/dev/${dev}`], []]),
  ...['shred', 'fdisk', 'sfdisk', 'parted', 'sgdisk', 'blkdiscard'].map(
    (tool): [string, string[], string[][]] => [BLOCK, [`/usr/sbin/${tool}`, '/dev/sdb'], []],
  ),
  [BOMB, ['bash', '-c', ':(){ :|:& };:'], []],
  [BOMB, ['sh', '-c', 'echo hi; : ( ) { : | : & } ; :'], []],
  [SHADOW, ['cat', '/etc/shadow'], []],
  [SHADOW, ['cat', '/etc/gshadow'], []],
  [SHADOW, ['cat', '/etc//shadow'], [['cat', '/etc/shadow']]],
  [SHADOW, ['cat', '/etc/./shadow'], [['cat', '/etc/shadow']]],
  [SHADOW, ['tail', '/srv/logs/innocent.log'], [['tail', '/etc/shadow']]],
  [SHADOW, ['grep', 'root', '--file=/etc/shadow'], []],
  [SHADOW, ['cp', '/etc/shadow-', '/tmp/x'], []],
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
  [RM, ['rm', '-f', '/*'], []],
  [RM, ['rmdir', '-p', '/'], []],
  [RM, ['find', '/', '-name', 'x', '-rf'], []],
  [MKFS, ['mkfsinfo', '/dev/sda'], []],
  [MKFS, ['echo', 'mkfs.ext4'], []],
  [MKFS, ['/usr/bin/mkfsfoo'], []],
  [MKFS, ['mke2fsck'], []],
  [BLOCK, ['dd', 'if=/dev/sda', 'of=/tmp/disk.img'], [['dd', 'if=/dev/block/8:0', 'of=/tmp/disk.img']]],
  [BLOCK, ['dd', 'of=/srv/backup.img'], [['dd', 'of=/srv/backup.img']]],
  [BLOCK, ['shred', '/tmp/secret.txt'], [['shred', '/tmp/secret.txt']]],
  [BLOCK, ['cat', '/dev/sda'], [['cat', '/dev/block/8:0']]],
  [BLOCK, ['dd', 'if=/dev/urandom', 'of=/dev/null'], [['dd', 'if=/dev/urandom', 'of=/dev/null']]],
  [BLOCK, ['dd', 'of=/dev/shm/scratch'], [['dd', 'of=/dev/shm/scratch']]],
  [BLOCK, ['dd', 'of=/srv/dev/sda.img'], [['dd', 'of=/srv/dev/sda.img']]],
  [BLOCK, ['parted', '--list'], []],
  [BLOCK, ['lsblk', '/dev/sda'], [['lsblk', '/dev/block/8:0']]],
  [BLOCK, ['fdisk', '-l', '/tmp/disk.img'], [['fdisk', '-l', '/tmp/disk.img']]],
  [BOMB, ['echo', ':()'], []],
  [BOMB, ['sh', '-c', 'f(){ echo hi; }; f'], []],
  [SHADOW, ['cat', '/etc/passwd'], [['cat', '/etc/passwd']]],
  [SHADOW, ['cat', '/etc/shadowsocks.json'], [['cat', '/etc/shadowsocks.json']]],
  [SHADOW, ['cat', '/srv/etc-shadow.txt'], []],
  [CHMOD, ['chmod', '777', '/'], [['chmod', '777', '/']]],
  [CHMOD, ['chmod', '-r', '/'], []], // -r removes read permission; only -R recurses
  [CHMOD, ['chown', '-R', 'www-data', '/var/www'], []],
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
