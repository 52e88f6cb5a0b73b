-- Why a parcel is on the exceptions list: it names no order of ours, or the order it names has
-- nothing bought that could arrive (the order's state then says where it stands).
ALTER TABLE warehouse_exceptions ADD COLUMN reason TEXT NOT NULL DEFAULT 'matches no order';
