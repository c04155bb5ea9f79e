UPDATE customers SET email = 'edsger@example.org', updated_at = '2026-03-02 08:00:00' WHERE customer_id = 4;
UPDATE customers SET credit_limit = '3000.00', phone = '+1 212 555 0199', updated_at = '2026-03-02 08:30:00' WHERE customer_id = 2;
INSERT INTO customers VALUES (8, 'Margaret Hamilton', 'margaret@example.org', '+1 617 555 0108', 'US', '4200.00', '2026-03-02 09:00:00');
