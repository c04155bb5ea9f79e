CREATE TABLE IF NOT EXISTS customers (
  customer_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT,
  phone TEXT,
  country TEXT,
  credit_limit DECIMAL(12,2),
  updated_at TIMESTAMP NOT NULL
);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.org', '+44 20 7946 0101', 'GB', '5000.00', '2026-02-01 10:00:00'),
  (2, 'Grace Hopper', 'grace@example.org', '+1 212 555 0102', 'US', '2500.50', '2026-02-02 11:00:00'),
  (3, 'Alan Turing', 'alan@example.org', '+44 161 496 0103', 'GB', '1000.00', '2026-02-03 12:00:00'),
  (4, 'Edsger Dijkstra', NULL, '+31 20 794 0104', 'NL', '750.00', '2026-02-04 13:00:00'),
  (5, 'Barbara Liskov', 'barbara@example.org', '+1 617 555 0105', 'US', '12000.00', '2026-02-05 14:00:00'),
  (6, 'Donald Knuth', 'don@example.org', '+1 650 555 0106', 'US', '99999.99', '2026-02-06 15:00:00'),
  (7, 'Frances Allen', 'fran@example.org', NULL, 'US', '300.00', '2026-02-07 16:00:00');
