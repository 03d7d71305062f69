-- Every change to the catalog is announced on the 'seedos_catalog' channel, once per statement
-- and (PostgreSQL folds equal notifications) once per transaction, when it commits.
-- marketplace_service keeps what category counts need in memory (an inverted index of the
-- search vectors) and reads the catalog again when told; without this it would count every
-- match in SQL on every search. The payload is empty: the listeners read the whole catalog.
CREATE OR REPLACE FUNCTION public.marketplace_connectors_notify()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM pg_notify('seedos_catalog', '');
  RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER marketplace_connectors_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.marketplace_connectors
FOR EACH STATEMENT EXECUTE FUNCTION public.marketplace_connectors_notify();

REVOKE ALL ON FUNCTION public.marketplace_connectors_notify() FROM PUBLIC, anon, authenticated;
