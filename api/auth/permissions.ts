/**
 * The single declared permission table: which roles may perform which action. Every route names exactly
 * one action; a route without one is a bug (the route × role test walks this table).
 */
export const ROLES = ['admin', 'manager', 'clerk', 'order-system', 'sheet-sync', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

const READERS: readonly Role[] = ROLES;

export const PERMISSIONS = {
  'catalog:read': READERS,
  'catalog:write': ['admin', 'manager'],
  'catalog:reorder': ['admin', 'manager', 'sheet-sync'],
  'locations:write': ['admin'],
  'stock:read': READERS,
  'sync:read': READERS,
  'movements:read': ['admin', 'manager', 'clerk', 'viewer'],
  'stock:adjust': ['admin', 'manager', 'clerk', 'sheet-sync'],
  'stock:receive': ['admin', 'manager', 'clerk'],
  'stock:transfer': ['admin', 'manager', 'clerk'],
  'stock:import': ['admin', 'manager'],
  'stock:export': ['admin', 'manager', 'clerk', 'viewer'],
  'orders:read': ['admin', 'manager', 'clerk', 'order-system', 'viewer'],
  'orders:write': ['admin', 'manager', 'order-system'],
  'orders:read-contact': ['admin', 'manager', 'order-system'],
  'api-keys:manage': ['admin'],
  'audit:read': ['admin'],
  'webhooks:manage': ['admin'],
  'analytics:read': ['admin', 'manager', 'clerk', 'viewer'],
  'dashboard:read': ['admin', 'manager', 'clerk', 'viewer'],
} as const satisfies Record<string, readonly Role[]>;

export type Action = keyof typeof PERMISSIONS;

/** True when any of `roles` may perform `action`. */
export function isAllowed(roles: readonly string[], action: Action): boolean {
  const allowed: readonly string[] = PERMISSIONS[action];
  return roles.some((role) => allowed.includes(role));
}
