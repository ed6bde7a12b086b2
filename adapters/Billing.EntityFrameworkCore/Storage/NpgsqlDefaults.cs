using Npgsql;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>Connection settings the adapter applies to PostgreSQL connection strings.</summary>
internal static class NpgsqlDefaults
{
    /// <summary>
    /// Turns on Npgsql's automatic statement preparation (<c>Max Auto Prepare=32</c>, <c>Auto Prepare Min Usages=2</c>)
    /// unless the connection string sets it: the adapter sends the same few statements over and over, and preparing
    /// them saves PostgreSQL most of its parse and plan work. Also sets <c>No Reset On Close=true</c> unless the
    /// connection string mentions it: the adapter changes no session state (its advisory locks are transaction-scoped),
    /// so the reset statements Npgsql would otherwise send each time a pooled connection is reused are pure cost
    /// (an open transaction is still rolled back when a connection goes back to the pool).
    /// </summary>
    public static string Tuned(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var changed = false;
        if (builder.MaxAutoPrepare == 0)
        {
            builder.MaxAutoPrepare = 32;
            builder.AutoPrepareMinUsages = 2;
            changed = true;
        }

        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        if (!given.ContainsKey("No Reset On Close") && !given.ContainsKey("NoResetOnClose"))
        {
            builder.NoResetOnClose = true;
            changed = true;
        }

        return changed ? builder.ConnectionString : connectionString;
    }
}
