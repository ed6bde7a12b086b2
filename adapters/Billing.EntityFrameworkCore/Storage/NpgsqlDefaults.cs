using Npgsql;

namespace Billing.EntityFrameworkCore.Storage;

/// <summary>Connection settings the adapter applies to PostgreSQL connection strings.</summary>
internal static class NpgsqlDefaults
{
    /// <summary>
    /// Turns on Npgsql's automatic statement preparation (<c>Max Auto Prepare=32</c>, <c>Auto Prepare Min Usages=2</c>)
    /// unless the connection string sets it: the adapter sends the same few statements over and over, and preparing
    /// them saves PostgreSQL most of its parse and plan work.
    /// </summary>
    public static string WithAutoPrepare(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (builder.MaxAutoPrepare != 0)
        {
            return connectionString;
        }

        builder.MaxAutoPrepare = 32;
        builder.AutoPrepareMinUsages = 2;
        return builder.ConnectionString;
    }
}
