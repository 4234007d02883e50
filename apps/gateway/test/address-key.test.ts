import { describe, expect, it } from 'vitest';
import { clientAddressKey } from '../src/http/address-key.ts';

/** The guests' HTTP budget key (PROTOCOL §15): IPv4 as it is, IPv6 by its /64. */
describe('clientAddressKey', () => {
  it('gives every address and spelling of one IPv6 /64 the same key', () => {
    const spellings = [
      '2001:db8:0:1::1',
      '2001:db8:0:1::2',
      '2001:0db8:0000:0001:0000:0000:0000:0001',
      '2001:DB8:0:1:FFFF:FFFF:FFFF:FFFF',
      '2001:db8::1:abcd:0:0:5',
      '2001:db8:0:1:a:b:c:d',
      '2001:db8:0:1::',
      '2001:db8:0:1:0:0:1.2.3.4',
      '2001:db8:0:1::1%eth0',
    ];
    for (const address of spellings) expect(clientAddressKey(address), address).toBe('2001:0db8:0000:0001::/64');
  });

  it('gives different /64s different keys', () => {
    const keys = ['2001:db8:0:1::1', '2001:db8:0:2::1', '2001:db8:1:1::1', '2001:db9:0:1::1', '2001:db8::1', '::1', 'fe80::1'].map(
      clientAddressKey,
    );
    expect(new Set(keys).size).toBe(keys.length);
    expect(clientAddressKey('::1')).toBe('0000:0000:0000:0000::/64');
    expect(clientAddressKey('fe80::1%2')).toBe('fe80:0000:0000:0000::/64');
  });

  it('keeps IPv4 addresses as they are, and reads an IPv4-mapped IPv6 address as its IPv4 address', () => {
    expect(clientAddressKey('203.0.113.7')).toBe('203.0.113.7');
    expect(clientAddressKey('203.0.113.8')).toBe('203.0.113.8');
    for (const mapped of ['::ffff:203.0.113.7', '::FFFF:203.0.113.7', '::ffff:cb00:7107', '0:0:0:0:0:ffff:203.0.113.7', '0000:0000:0000:0000:0000:FFFF:CB00:7107']) {
      expect(clientAddressKey(mapped), mapped).toBe('203.0.113.7');
    }
    expect(clientAddressKey('::ffff:127.0.0.1')).toBe('127.0.0.1');
    // Not mapped: an IPv4-compatible or a NAT64 address is an IPv6 address like any other.
    expect(clientAddressKey('::203.0.113.7')).toBe('0000:0000:0000:0000::/64');
    expect(clientAddressKey('64:ff9b::203.0.113.7')).toBe('0064:ff9b:0000:0000::/64');
  });

  it('keeps what is not an address as it is', () => {
    for (const odd of ['', 'unknown', '[2001:db8::1]:443', '2001:db8::1::2', '01.2.3.4', '1.2.3.4.5']) {
      expect(clientAddressKey(odd), odd).toBe(odd);
    }
  });
});
